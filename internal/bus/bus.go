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
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	Logger    *slog.Logger
}

// Bus is a running embedded server and an in-process connection to it.
type Bus struct {
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	lock *flock.Flock
	log  *slog.Logger
	// closed is closed by the connection's ClosedHandler once a drain ends.
	closed chan struct{}
}

// Open locks the data dir, starts the server, connects in-process and
// creates the streams. On error nothing is left running or locked.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("open bus: data dir is empty")
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("open bus: create data dir: %w", err)
	}
	lockPath := filepath.Join(o.DataDir, "healer.lock")
	lock := flock.New(lockPath)
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("open bus: lock %s: %w", lockPath, err)
	}
	if !ok {
		return nil, fmt.Errorf("open bus: %s: %w (pid %s)", o.DataDir, ErrLocked, readPID(lockPath))
	}
	// The pid is for the error message of the next healer; the lock is the flock.
	_ = os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())), 0o640)
	b, err := start(ctx, o)
	if err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	b.lock = lock
	return b, nil
}

func readPID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

func start(ctx context.Context, o Options) (*Bus, error) {
	sopts := &server.Options{
		ServerName: ServerName,
		JetStream:  true,
		// The server adds "jetstream" to this itself.
		StoreDir:   o.DataDir,
		NoSigs:     true,
		DontListen: o.Listen == "",
		// The server's own HTTP monitor stays off.
		HTTPPort: 0,
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
	srv.SetLoggerV2(&slogAdapter{log: o.Logger.With("component", "nats"), domain: o.Domain}, false, false, false)
	srv.Start()
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
	}
	closed := make(chan struct{})
	copts := []nats.Option{
		nats.InProcessServer(srv), nats.Name("healer"), nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	}
	if o.Token != "" {
		copts = append(copts, nats.Token(o.Token))
	} else if o.User != "" {
		copts = append(copts, nats.UserInfo(o.User, o.Password))
	}
	nc, err := nats.Connect("", copts...)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("open bus: connect in-process: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("open bus: jetstream: %w", err)
	}
	b := &Bus{srv: srv, nc: nc, js: js, log: o.Logger, closed: closed}
	if err := b.ensureStreams(ctx, o); err != nil {
		b.shutdown()
		return nil, err
	}
	if readerAdminPass != "" {
		if err := ensureReaderMirror(ctx, srv, readerAdminPass, o.Retention); err != nil {
			b.shutdown()
			return nil, fmt.Errorf("open bus: %w", err)
		}
	}
	return b, nil
}

func (b *Bus) ensureStreams(ctx context.Context, o Options) error {
	cfg := jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "HealMyDocker events: observed Docker events, decisions, outcomes",
		Subjects:    []string{"hmd.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.Retention,
		// Long enough to swallow events the daemon replays after a reconnect.
		Duplicates: 10 * time.Minute,
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("open bus: create stream %s: %w", EventsStream, err)
	}
	return nil
}

// Conn is the in-process client connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context of the in-process connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Ready reports whether the server and the in-process connection are up.
func (b *Bus) Ready() error {
	if !b.srv.Running() {
		return errors.New("nats server not running")
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats connection %s", b.nc.Status())
	}
	if !b.srv.JetStreamEnabled() {
		return errors.New("jetstream disabled")
	}
	return nil
}

// ClientURL is the URL of the TCP listener, or "" without one.
func (b *Bus) ClientURL() string {
	if b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Close drains the connection, shuts the server down, waits for the store
// to be closed, and releases the data dir.
func (b *Bus) Close() error {
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
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// slogAdapter sends the server's logs through slog.
type slogAdapter struct {
	log    *slog.Logger
	domain string

	mu       sync.Mutex
	lastLeaf string
	lastAt   time.Time
}

// leafError says the server's leaf-node errors once a minute, not once a
// reconnect, and says plainly what a refusal means.
func (a *slogAdapter) leafError(msg string) bool {
	if !strings.Contains(strings.ToLower(msg), "leafnode") {
		return false
	}
	a.mu.Lock()
	repeat := msg == a.lastLeaf && time.Since(a.lastAt) < time.Minute
	if !repeat {
		a.lastLeaf, a.lastAt = msg, time.Now()
	}
	a.mu.Unlock()
	if repeat {
		return true
	}
	if strings.Contains(msg, "Duplicate Remote LeafNode Connection") || strings.Contains(msg, "Replacing connection from same server") {
		a.log.Error("another host with this host's name is linked to the hub (a host cloned from one image?): the hub keeps only one of the two, and their events would mix; give each host its own HMD_HOST_NAME", "domain", a.domain, "server", msg)
		return true
	}
	if strings.Contains(msg, "Authorization Violation") {
		a.log.Error("the hub refused this host's leaf-node credentials (hub_user, hub_password); healing goes on here and events wait in this host's stream", "server", msg)
		return true
	}
	a.log.Warn("hub link: " + msg + "; healing goes on here and events wait in this host's stream")
	return true
}

// Notices are the server's start-up banner and chatter: debug for us.
func (a *slogAdapter) Noticef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any) {
	if msg := fmt.Sprintf(f, v...); !a.leafError(msg) {
		a.log.Warn(msg)
	}
}
func (a *slogAdapter) Fatalf(f string, v ...any) { a.log.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any) {
	if msg := fmt.Sprintf(f, v...); !a.leafError(msg) {
		a.log.Error(msg)
	}
}
func (a *slogAdapter) Debugf(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
