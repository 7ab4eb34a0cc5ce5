package testkit

import (
	"io"
	"net"
	"sync"
)

// Relay passes connections through to a target, byte for byte, and can be
// cut: a link lost (a host's link to the hub, the connection to Docker)
// while both ends run on.
type Relay struct {
	ln              net.Listener
	network, target string
	mu              sync.Mutex
	open            bool
	conns           []net.Conn
}

// NewRelay serves ln, open, passing each connection to target on network
// ("tcp", "unix"); Close stops it.
func NewRelay(ln net.Listener, network, target string) *Relay {
	r := &Relay{ln: ln, network: network, target: target, open: true}
	go r.serve()
	return r
}

func (r *Relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if !r.open {
			r.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial(r.network, r.target)
		if err != nil {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns = append(r.conns, c, u)
		r.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// Addr is where the relay listens.
func (r *Relay) Addr() net.Addr { return r.ln.Addr() }

// Set opens the relay or cuts it: cut drops every connection and closes
// new ones at once.
func (r *Relay) Set(open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = open
	if !open {
		for _, c := range r.conns {
			c.Close()
		}
		r.conns = nil
	}
}

// Close stops the relay.
func (r *Relay) Close() error {
	r.Set(false)
	return r.ln.Close()
}
