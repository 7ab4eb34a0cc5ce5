package heal

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// restarter is a fake Docker whose restarts block until released.
type restarter struct {
	mu      sync.Mutex
	calls   []call
	running int
	peak    int
	started chan string
	release chan struct{}
}

type call struct {
	id      string
	timeout time.Duration
}

func newRestarter() *restarter {
	return &restarter{started: make(chan string, 100), release: make(chan struct{})}
}

func (r *restarter) Inspect(_ context.Context, id string) (events.Container, error) {
	return events.Container{ID: id, Name: "c-" + id}, nil
}

func (r *restarter) LastWords(context.Context, string, int, int) (string, string, error) {
	return "", "", nil
}

// Stop is not expected of the restart tests: it fails loudly.
func (r *restarter) Stop(context.Context, string, time.Duration) error {
	return errors.New("restarter: unexpected stop")
}

func (r *restarter) Dependents(context.Context, string, string) ([]events.Container, error) {
	return nil, nil
}

func (r *restarter) Restart(_ context.Context, id string, timeout time.Duration) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{id, timeout})
	r.running++
	r.peak = max(r.peak, r.running)
	r.mu.Unlock()
	r.started <- id
	<-r.release
	r.mu.Lock()
	r.running--
	r.mu.Unlock()
	return nil
}

type publisher struct {
	mu  sync.Mutex
	evs []events.Event
}

func (p *publisher) Publish(e events.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, e)
}

func (p *publisher) all() []events.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]events.Event(nil), p.evs...)
}

func (p *publisher) kinds() map[events.Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[events.Kind]int{}
	for _, e := range p.evs {
		m[e.Kind()]++
	}
	return m
}

func newHealer(r *restarter, p *publisher, maxConcurrent int) *Healer {
	return New(Options{
		Host: "h", Label: "healme", Policy: policy(),
		MaxConcurrent: maxConcurrent, Docker: r, Publisher: p, Log: slog.New(slog.DiscardHandler),
	})
}

func sick(id string, labels map[string]string) events.Observed {
	return events.Observed{Kind: events.DockerUnhealthy, ContainerID: id, Name: "c-" + id, Labels: labels, DockerTime: time.Unix(0, 1), Received: time.Now()}
}

var selected = map[string]string{"healme": "true"}

func waitStarted(t *testing.T, r *restarter, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		select {
		case id := <-r.started:
			ids = append(ids, id)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d restarts started", len(ids), n)
		}
	}
	return ids
}

func TestHealerBoundsConcurrencyAndNeverRestartsOneContainerTwice(t *testing.T) {
	r, p := newRestarter(), &publisher{}
	h := newHealer(r, p, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()

	for _, id := range []string{"a", "b", "c", "d", "e"} {
		h.Handle(sick(id, selected))
	}
	h.Handle(sick("a", selected)) // while a's restart runs
	waitStarted(t, r, 3)
	select {
	case id := <-r.started:
		t.Fatalf("restart of %s started beyond the bound of 3", id)
	default:
	}
	close(r.release)
	waitStarted(t, r, 2)
	cancel()
	<-done

	if r.peak != 3 {
		t.Errorf("peak concurrent restarts %d, want 3", r.peak)
	}
	perID := map[string]int{}
	for _, c := range r.calls {
		perID[c.id]++
		// None sent: the daemon's default, 10 s, is ours, and it picks
		// the container's own when it has one.
		if c.timeout != -1 {
			t.Errorf("restart %s with stop timeout %s, want none (the container's own)", c.id, c.timeout)
		}
	}
	if perID["a"] != 1 || len(r.calls) != 5 {
		t.Errorf("restarts %v: want each of 5 containers once", perID)
	}
	k := p.kinds()
	if k[events.RestartRequested] != 5 || k[events.RestartSucceeded] != 5 || k[events.RestartSkipped] != 1 || k[events.DockerUnhealthy] != 6 {
		t.Errorf("published %v", k)
	}
}

func TestHealerIgnoresUnselectedAndUsesLabelOverrides(t *testing.T) {
	r, p := newRestarter(), &publisher{}
	close(r.release)
	h := newHealer(r, p, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()

	h.Handle(sick("plain", nil))
	h.Handle(sick("off", map[string]string{"healme": "false"}))
	h.Handle(sick("slow", map[string]string{"healme": "true", "healme.stop_timeout": "30"}))
	h.Handle(sick("bad", map[string]string{"healme": "true", "healme.stop_timeout": "soon"}))
	h.Handle(sick("bad", map[string]string{"healme": "true", "healme.stop_timeout": "soon"}))
	waitStarted(t, r, 2)
	cancel()
	<-done

	got := map[string]time.Duration{}
	for _, c := range r.calls {
		got[c.id] = c.timeout
	}
	if _, ok := got["plain"]; ok {
		t.Error("restarted an unlabelled container")
	}
	if _, ok := got["off"]; ok {
		t.Error("restarted a container labelled false")
	}
	if got["slow"] != 30*time.Second || got["bad"] != -1 {
		t.Errorf("stop timeouts %v: want slow 30s, bad none (the container's own, else the default)", got)
	}
	if n := p.kinds()[events.ConfigError]; n != 1 {
		t.Errorf("%d config-error events for one bad label seen twice, want 1", n)
	}
	for _, e := range p.evs {
		if e.Subject == "c-plain" || e.Subject == "c-off" {
			t.Errorf("published %s about unselected %s", e.Kind(), e.Subject)
		}
	}
}

func (r *restarter) Recreate(context.Context, string, string, bool, func(string)) (string, error) {
	return "", errors.New("not in this test")
}

func (r *restarter) ComposeDependents(context.Context, events.Container) ([]events.Container, error) {
	return nil, nil
}
