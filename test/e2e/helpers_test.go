package e2e

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/healmydocker/healmydocker/internal/app"
	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/logging"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/testkit/natstest"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// healer is an in-process all-in-one healer.
type healer struct {
	*app.App
	stop func()
	got  *recorder
}

// startHealer runs a healer on dataDir with args until t ends or stop.
func startHealer(t *testing.T, dataDir string, args ...string) *healer {
	t.Helper()
	return startHealerEnv(t, dataDir, nil, args...)
}

// startHealerEnv is startHealer with environment variables.
func startHealerEnv(t *testing.T, dataDir string, environ []string, args ...string) *healer {
	t.Helper()
	args = append([]string{"--data-dir", dataDir, "--http-port", strconv.Itoa(testkit.FreePort(t)), "--log-level", "debug"}, args...)
	cfg, err := config.Load(args, environ, io.Discard, func(string) {})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := logging.New(testWriter{t}, "text", cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, "test")
	if err != nil {
		cancel()
		t.Fatalf("start healer: %v", err)
	}
	rec := record(t, a.Bus().Conn(), "hmd.>")
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("healer run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("healer did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return &healer{App: a, stop: stop, got: rec}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// recorder keeps every event published on the bus.
type recorder struct{ log *waitlog.Log[events.Event] }

func record(t *testing.T, nc *nats.Conn, subject string) *recorder {
	r := &recorder{log: waitlog.New[events.Event]()}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		e, err := events.Unmarshal(m.Data)
		if err != nil {
			t.Errorf("bad event on %s: %v", m.Subject, err)
			return
		}
		r.log.Add(e)
	})
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// wait returns the first event matching match, waiting up to d.
func (r *recorder) wait(t *testing.T, d time.Duration, what string, match func(events.Event) bool) events.Event {
	t.Helper()
	return r.waitNth(t, d, what, 1, match)
}

// waitNth returns the nth (from 1) event matching match.
func (r *recorder) waitNth(t *testing.T, d time.Duration, what string, n int, match func(events.Event) bool) events.Event {
	t.Helper()
	e, ok := r.log.WaitNth(d, n, match)
	if !ok {
		t.Fatalf("no bus event %s within %s", what, d)
	}
	return e
}

func (r *recorder) count(match func(events.Event) bool) int { return len(r.log.All(match)) }

func kindOf(k events.Kind, container string) func(events.Event) bool {
	return func(e events.Event) bool { return e.Kind() == k && e.Subject == container }
}

// skipped matches a skipped restart of container for reason.
func skipped(container, reason string) func(events.Event) bool {
	return func(e events.Event) bool {
		return e.Kind() == events.RestartSkipped && e.Subject == container && e.Data.Reason == reason
	}
}

// history reads every event stored in the data dir of a stopped healer.
func history(t *testing.T, dataDir string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("reopen data dir: %v", err)
	}
	defer b.Close()
	out, err := natstest.ReadStream(ctx, b.JetStream(), bus.EventsStream)
	if err != nil {
		t.Fatalf("read history: %v", err)
	}
	return out
}
