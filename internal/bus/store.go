package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// streamSpec is a stream (or a bucket's stream) the bus keeps: ensure
// creates it or brings its config up to date.
type streamSpec struct {
	name   string
	ensure func(context.Context) error
}

// addStream registers a stream to create now, if the store is up, and
// each time JetStream comes back.
func (b *Bus) addStream(ctx context.Context, s streamSpec) error {
	b.mu.Lock()
	b.streams = slices.DeleteFunc(b.streams, func(x streamSpec) bool { return x.name == s.name })
	b.streams = append(b.streams, s)
	down := b.down
	b.mu.Unlock()
	if down != "" {
		return fmt.Errorf("store degraded: %s", down)
	}
	return b.ensureOne(ctx, s)
}

func (b *Bus) ensureAll(ctx context.Context) error {
	b.mu.Lock()
	streams := append([]streamSpec(nil), b.streams...)
	b.mu.Unlock()
	for _, s := range streams {
		if err := b.ensureOne(ctx, s); err != nil {
			return err
		}
	}
	if b.readerAdminPass != "" && !b.o.ReadOnly {
		b.mu.Lock()
		srv := b.srv
		b.mu.Unlock()
		if err := ensureReaderMirror(ctx, srv, b.readerAdminPass, b.o.Retention); err != nil {
			return fmt.Errorf("reader mirror: %w", err)
		}
	}
	return nil
}

// ensureOne creates s. A stream whose files are on disk but that the
// server did not load is corrupt: its files are moved aside, kept and
// named in the log, before a fresh one is created in its place.
func (b *Bus) ensureOne(ctx context.Context, s streamSpec) error {
	if b.o.ReadOnly {
		if _, err := b.js.Stream(ctx, s.name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("read stream %s: %w", s.name, err)
		}
		return nil
	}
	_, err := b.js.Stream(ctx, s.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		dir := filepath.Join(b.o.DataDir, "jetstream", "$G", "streams", s.name)
		if _, serr := os.Stat(dir); serr == nil {
			aside := filepath.Join(b.o.DataDir, "corrupt", s.name+"-"+time.Now().UTC().Format("20060102T150405Z"))
			if err := os.MkdirAll(filepath.Dir(aside), 0o750); err != nil {
				return fmt.Errorf("move corrupt stream %s aside: %w", s.name, err)
			}
			if err := os.Rename(dir, aside); err != nil {
				return fmt.Errorf("move corrupt stream %s aside: %w", s.name, err)
			}
			b.log.Error("the store could not load this stream; its files are moved aside, kept, and a fresh stream is started", "stream", s.name, "moved_to", aside)
		}
	} else if err != nil {
		return fmt.Errorf("read stream %s: %w", s.name, err)
	}
	return s.ensure(ctx)
}

// probeSize is what the data dir must take before JetStream is started
// on it: a store on a full disk is disabled at its first write anyway.
const probeSize = 256 << 10

// probe checks that the data dir takes a write.
func probe(dir string) error {
	path := filepath.Join(dir, ".hmd-probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("write to data dir: %w", err)
	}
	_, werr := f.Write(make([]byte, probeSize))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(path)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write to data dir: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("write to data dir: %w", rerr)
	}
	return nil
}

// Down is why the store is unusable, or nil.
func (b *Bus) Down() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down == "" {
		return nil
	}
	return errors.New(b.down)
}

// WaitUp waits until the store works.
func (b *Bus) WaitUp(ctx context.Context) error {
	for {
		b.mu.Lock()
		down, changed := b.down, b.changed
		b.mu.Unlock()
		if down == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Changed is closed at the store's next change of state.
func (b *Bus) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

func (b *Bus) setDown(err error) {
	msg := err.Error()
	b.mu.Lock()
	was := b.down
	b.down = msg
	if was == "" {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	switch {
	case was == "":
		b.log.Error("event store degraded: healing goes on from Docker's state alone; events are queued in memory and stored when the store is back", "reason", msg, "data_dir", b.o.DataDir)
		if b.o.OnState != nil {
			b.o.OnState(err)
		}
	case was != msg:
		b.log.Warn("event store still degraded", "reason", msg)
	}
}

func (b *Bus) setUp() {
	b.mu.Lock()
	was := b.down
	b.down = ""
	if was != "" {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	if was != "" {
		b.log.Info("event store is back", "was", was)
		if b.o.OnState != nil {
			b.o.OnState(nil)
		}
	}
}

// StoreFailed tells the bus of an error a write got: a storage error
// sends the store into degraded mode until it is repaired.
func (b *Bus) StoreFailed(err error) {
	if isStorageErr(err) && b.Down() == nil {
		b.setDown(fmt.Errorf("jetstream storage error: %w", err))
	}
}

func isStorageErr(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount,
			10023, // insufficient resources
			10077: // stream store failed
			return true
		}
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no space left") || strings.Contains(msg, "critical write error") ||
		strings.Contains(msg, "read-only file system") || strings.Contains(msg, "insufficient resources") ||
		strings.Contains(msg, "jetstream not enabled")
}

// supervise notices JetStream disabling itself (nats-server does on a
// write error such as a full disk) and brings the store back with backoff:
// a fresh server with JetStream on the data dir, once the dir takes writes.
func (b *Bus) supervise() {
	defer close(b.done)
	// The bus's life, for the waits between repairs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.Changed():
		}
		if b.Down() == nil {
			b.mu.Lock()
			srv := b.srv
			b.mu.Unlock()
			if srv != nil && !srv.JetStreamEnabled() {
				b.setDown(errors.New("jetstream disabled itself after a storage error (see the nats log above)"))
			}
			continue
		}
		err := retry(ctx, bo, func() error {
			err := b.repair()
			if err != nil {
				b.setDown(err)
			}
			return err
		})
		if err == nil {
			b.setUp()
		}
	}
}

// repair restarts the server with JetStream once the data dir takes
// writes, and creates the streams.
func (b *Bus) repair() error {
	if err := b.lockDir(); err != nil {
		return err
	}
	if err := probe(b.o.DataDir); err != nil {
		return err
	}
	b.mu.Lock()
	old := b.srv
	b.srv = nil
	b.mu.Unlock()
	if old != nil {
		old.Shutdown()
		old.WaitForShutdown()
	}
	srv, err := b.newServer(true)
	if err != nil {
		// Live events still flow through a server without JetStream.
		if srv, err2 := b.newServer(false); err2 == nil {
			b.mu.Lock()
			b.srv = srv
			b.mu.Unlock()
		}
		return err
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !b.nc.IsConnected() {
		select {
		case <-ctx.Done():
			return errors.New("the in-process connection did not come back to the restarted server")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The server has the connection's subscriptions (the reply inbox among
	// them) once a ping round-trip is done; a request before may go unanswered.
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("reconnect to the restarted server: %w", err)
	}
	return b.ensureAll(ctx)
}
