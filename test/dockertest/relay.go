package dockertest

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Relay passes a unix socket through to the engine's, byte for byte, and
// can be cut: the connection to Docker lost (a daemon restart, a socket
// proxy restarted) while the daemon itself runs on.
type Relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
}

// StartRelay listens on a new socket in dir, open.
func StartRelay(dir string) (*Relay, error) {
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "relay.sock"))
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, open: true}
	go r.serve()
	return r, nil
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
		u, err := net.Dial("unix", r.target)
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

// Host is the DOCKER_HOST of the relay.
func (r *Relay) Host() string { return "unix://" + r.ln.Addr().String() }

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
