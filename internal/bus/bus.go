// Package bus owns the embedded NATS server with JetStream: its lifecycle,
// the lock on the data dir, the streams, and publishing events into them.
// It is the only package that imports nats-server.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ServerName is fixed so JetStream finds its own store again after a restart.
const ServerName = "healmydocker"

// EventsStream holds every event the system publishes.
const EventsStream = "HMD_EVENTS"

// ErrLocked is returned when another process holds the data dir.
var ErrLocked = errors.New("data dir is locked by another healer")

// Options configure the embedded server.
type Options struct {
	DataDir string
	// Listen is host:port for a TCP listener; empty means none.
	Listen   string
	User     string
	Password string
	Token    string
	// ReaderUser may only read the events stream; it needs User.
	ReaderUser     string
	ReaderPassword string
	// TLS, when set, secures the listener.
	TLS TLS
	// Domain is this server's JetStream domain; needed with a hub, so the
	// hub's JetStream and this one stay apart.
	Domain string
	// HubURL makes the server a leaf node of the hub's leaf-node listener,
	// with HubUser and HubPassword.
	HubURL, HubUser, HubPassword string
	// Retention bounds the history by age; 0 keeps it forever.
	Retention time.Duration
	// EventsMaxBytes bounds the events stream on disk; 0 is
	// DefaultEventsMaxBytes. The oldest events go first.
	EventsMaxBytes int64
	// ReadOnly opens an existing store to read it: nothing is created or
	// reconfigured, and a store that cannot be opened is an error.
	ReadOnly bool
	// OnState hears that the store went down (with why) and that it is
	// back (nil). Without ReadOnly, Open does not fail on a store that
	// cannot be opened: it runs without JetStream and retries.
	OnState func(error)
	Logger  *slog.Logger
}

// DefaultEventsMaxBytes bounds the events stream when Options do not.
const DefaultEventsMaxBytes = 256 << 20

// DedupeWindow is how long a stream remembers event ids to drop a second
// copy. Ids are deterministic, and copies come within seconds: a batch
// retried after a lost ack (backoff at most 5 s), or an event the daemon
// resends after a reconnect (the watcher drops those itself). The server
// keeps every id of the window in memory and re-reads every message of it
// at start, so it is short.
const DedupeWindow = 30 * time.Second

// Bus is a running embedded server and an in-process connection to it.
// The server underneath may be restarted to bring JetStream back; the
// connection reconnects to the new one, so Conn and JetStream stay valid.
type Bus struct {
	o    Options
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	lock *flock.Flock
	// closed is closed by the connection's ClosedHandler once a drain ends.
	closed chan struct{}

	mu  sync.Mutex
	srv *server.Server
	// streams are created or checked each time JetStream comes up.
	streams []streamSpec
	// down is why the store is unusable, "" while it works; changed is
	// closed and replaced at every change.
	down    string
	changed chan struct{}

	stop chan struct{}
	done chan struct{}
	// readerAdminPass links the reader account's mirror (reader.go).
	readerAdminPass string
}

// Open locks the data dir, starts the server, connects in-process and
// creates the streams. Without ReadOnly, a data dir that is full,
// read-only or unreadable does not fail it: the bus runs without
// JetStream, says why in Ready, and retries. On error nothing is left
// running or locked.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("open bus: data dir is empty")
	}
	if o.EventsMaxBytes <= 0 {
		o.EventsMaxBytes = DefaultEventsMaxBytes
	}
	b := &Bus{o: o, log: o.Logger, closed: make(chan struct{}), changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	b.streams = []streamSpec{{name: EventsStream, ensure: b.ensureEvents}}
	var down error
	if o.ReadOnly {
		if err := b.lockDir(); err != nil {
			return nil, err
		}
	} else {
		down = b.lockDir()
		if errors.Is(down, ErrLocked) {
			return nil, down
		}
		if down == nil {
			down = probe(o.DataDir)
		}
	}
	srv, err := b.newServer(down == nil)
	if err != nil && down == nil && !o.ReadOnly {
		// JetStream did not start; the server still carries live events.
		down = err
		srv, err = b.newServer(false)
	}
	if err != nil {
		b.unlock()
		return nil, err
	}
	b.srv = srv
	if err := b.connect(); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		b.unlock()
		return nil, err
	}
	if down == nil {
		down = b.ensureAll(ctx)
	}
	if down != nil && o.ReadOnly {
		b.shutdown()
		b.unlock()
		return nil, down
	}
	if down != nil {
		b.setDown(down)
	}
	if o.ReadOnly {
		close(b.done)
	} else {
		go b.supervise()
	}
	return b, nil
}

// newServer starts a server, with JetStream on the data dir or without.
func (b *Bus) newServer(withJS bool) (*server.Server, error) {
	o := b.o
	sopts := &server.Options{
		ServerName: ServerName,
		JetStream:  withJS,
		// The server adds "jetstream" to this itself.
		StoreDir:   o.DataDir,
		NoSigs:     true,
		DontListen: o.Listen == "",
		// The server's own HTTP monitor stays off.
		HTTPPort: 0,
		// Each stream has its own byte bound. Left to itself the server
		// sizes the store by the disk space free at its start, and on a
		// disk that was full then refuses to create the streams ever after.
		JetStreamMaxStore: 1 << 40,
	}
	readerAdminPass := ""
	if o.Listen != "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("open bus: nats listen address %q: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("open bus: nats listen port %q: %w", port, err)
		}
		if o.Token == "" && (o.User == "" || o.Password == "") {
			return nil, fmt.Errorf("open bus: nats listener %s needs a user and password or a token", o.Listen)
		}
		sopts.Host, sopts.Port = host, p
		if o.TLS.enabled() {
			if err := serverTLS(sopts, o.TLS); err != nil {
				return nil, fmt.Errorf("open bus: %w", err)
			}
		}
		if o.ReaderUser != "" {
			if o.User == "" || o.Token != "" {
				return nil, errors.New("open bus: a reader user needs the listener to use a user and password, not a token")
			}
			if readerAdminPass, err = configureReader(sopts, o); err != nil {
				return nil, fmt.Errorf("open bus: %w", err)
			}
		} else {
			sopts.Username, sopts.Password, sopts.Authorization = o.User, o.Password, o.Token
		}
	}
	if o.Domain != "" {
		// Leaf nodes of one hub need names of their own; the name is
		// still fixed for the host across restarts.
		sopts.ServerName = ServerName + "-" + o.Domain
		sopts.JetStreamDomain = o.Domain
	}
	if o.HubURL != "" {
		remote, err := leafRemote(o.HubURL, o.HubUser, o.HubPassword)
		if err != nil {
			return nil, fmt.Errorf("open bus: %w", err)
		}
		sopts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
		sopts.LeafNode.ReconnectInterval = time.Second
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("open bus: new nats server: %w", err)
	}
	logs := &slogAdapter{log: o.Logger.With("component", "nats"), domain: o.Domain, storeErr: b.StoreFailed}
	srv.SetLoggerV2(logs, false, false, false)
	srv.Start()
	// Start enables JetStream before it returns, or gives up on the rest.
	if withJS && (!srv.JetStreamEnabled() || logs.fatalSeen()) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start jetstream on %s: %s", o.DataDir, logs.fatal())
	}
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("open bus: nats server not ready within 10s")
	}
	if readerAdminPass != "" {
		if err := linkReader(srv); err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil, fmt.Errorf("open bus: %w", err)
		}
		b.readerAdminPass = readerAdminPass
	}
	return srv, nil
}

// InProcessConn connects to the current server, so the connection finds
// a restarted one by itself.
func (b *Bus) InProcessConn() (net.Conn, error) {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv == nil {
		return nil, errors.New("nats server restarting")
	}
	return srv.InProcessConn()
}

func (b *Bus) connect() error {
	copts := []nats.Option{
		nats.InProcessServer(b), nats.Name("healer"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	if b.o.Token != "" {
		copts = append(copts, nats.Token(b.o.Token))
	} else if b.o.User != "" {
		copts = append(copts, nats.UserInfo(b.o.User, b.o.Password))
	}
	nc, err := nats.Connect("", copts...)
	if err != nil {
		return fmt.Errorf("open bus: connect in-process: %w", err)
	}
	// Acks that never come (a server restarting under the publisher)
	// fail instead of holding the queue.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		return fmt.Errorf("open bus: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return nil
}

func (b *Bus) ensureEvents(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "HealMyDocker events: observed Docker events, decisions, outcomes",
		Subjects:    []string{"hmd.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.o.Retention,
		MaxBytes:    b.o.EventsMaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  DedupeWindow,
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", EventsStream, err)
	}
	return nil
}

// Conn is the in-process client connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context of the in-process connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Ready reports whether the server, the in-process connection and the
// store are up.
func (b *Bus) Ready() error {
	b.mu.Lock()
	srv, down := b.srv, b.down
	b.mu.Unlock()
	if down != "" {
		return fmt.Errorf("store degraded: %s", down)
	}
	if srv == nil || !srv.Running() {
		return errors.New("nats server not running")
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats connection %s", b.nc.Status())
	}
	if !srv.JetStreamEnabled() {
		return errors.New("jetstream disabled")
	}
	return nil
}

// ClientURL is the URL of the TCP listener, or "" without one.
func (b *Bus) ClientURL() string {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv == nil || srv.Addr() == nil {
		return ""
	}
	return srv.ClientURL()
}

// Close stops the retries, drains the connection, shuts the server down,
// waits for the store to be closed, and releases the data dir.
func (b *Bus) Close() error {
	close(b.stop)
	<-b.done
	b.shutdown()
	if b.lock != nil {
		if err := b.lock.Unlock(); err != nil {
			return fmt.Errorf("close bus: unlock data dir: %w", err)
		}
	}
	return nil
}

func (b *Bus) shutdown() {
	if err := b.nc.Drain(); err == nil {
		select {
		case <-b.closed:
		case <-time.After(5 * time.Second):
			b.log.Warn("nats drain did not finish within 5s; closing")
		}
	}
	b.nc.Close()
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}
