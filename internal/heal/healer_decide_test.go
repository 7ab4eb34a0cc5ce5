package heal

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// scripted is a fake Docker whose restarts do what the test says.
type scripted struct {
	mu      sync.Mutex
	restart func(ctx context.Context, id string, timeout time.Duration) error
	inspect events.Container
	// inspectPanics: Inspect panics, as a bug on some input would.
	inspectPanics bool
	restarts      []string
	stops         []string
	inspects      int
}

func (s *scripted) Restart(ctx context.Context, id string, timeout time.Duration) error {
	s.mu.Lock()
	s.restarts = append(s.restarts, id)
	f := s.restart
	s.mu.Unlock()
	return f(ctx, id, timeout)
}

func (s *scripted) Stop(ctx context.Context, id string, timeout time.Duration) error {
	s.mu.Lock()
	s.stops = append(s.stops, id)
	s.mu.Unlock()
	return nil
}

func (s *scripted) LastWords(context.Context, string, int, int) (string, string, error) {
	return "", "", nil
}

func (s *scripted) Inspect(_ context.Context, id string) (events.Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inspects++
	if s.inspectPanics {
		panic("inspect: a bug")
	}
	c := s.inspect
	c.ID, c.Name, c.Labels = id, "c-"+id, selected
	return c, nil
}

func (s *scripted) Dependents(context.Context, string, string) ([]events.Container, error) {
	return nil, nil
}

func (s *scripted) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.restarts {
		if r == id {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	testkit.Until(t, 10*time.Second, what, f)
}

func (p *publisher) find(k events.Kind, container string) []events.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []events.Event
	for _, e := range p.evs {
		if e.Kind() == k && e.Subject == container {
			out = append(out, e)
		}
	}
	return out
}

func run(t *testing.T, h *Healer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Case 2 (#13): a restart that hangs frees its slot at its stop timeout
// plus the margin, is recorded as failed with the reason, and is retried by
// the policy.
func TestHungRestartFreesItsSlotAndIsRetried(t *testing.T) {
	d := &scripted{}
	var calls int
	d.restart = func(ctx context.Context, _ string, _ time.Duration) error {
		d.mu.Lock()
		calls++
		n := calls
		d.mu.Unlock()
		if n == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	p := &publisher{}
	pol := with(func(p *config.Policy) { p.BetweenRestarts = 0 })
	h := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: p,
		Log: slog.New(slog.DiscardHandler), RestartMargin: 200 * time.Millisecond})
	run(t, h)
	h.Handle(sick("a", map[string]string{"healme": "true", "healme.stop_timeout": "0.3"}))
	waitFor(t, "a restart_failed", func() bool { return len(p.find(events.RestartFailed, "c-a")) == 1 })
	f := p.find(events.RestartFailed, "c-a")[0]
	if !strings.Contains(f.Data.Error, "did not finish in its stop timeout plus margin (1.2s)") {
		t.Errorf("failure %q: want the deadline named (1 s rounded up + 200 ms)", f.Data.Error)
	}
	// Retried: the look finds it exited (the fake's inspect) and restarts.
	waitFor(t, "a retried", func() bool { return len(p.find(events.RestartSucceeded, "c-a")) == 1 })
	reqs := p.find(events.RestartRequested, "c-a")
	if len(reqs) != 2 || reqs[1].Data.Attempt != 2 || !strings.HasPrefix(reqs[1].Data.Reason, ReasonRetry) || reqs[1].ID == reqs[0].ID {
		t.Errorf("restart requests %+v: want a second, attempt 2, a retry with an id of its own", reqs)
	}
}

// Case 3b: a user's stop while the restart waited for a slot ends our claim.
func TestQueuedRestartDroppedAfterAUsersStop(t *testing.T) {
	release := make(chan struct{})
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	d.restart = func(_ context.Context, id string, _ time.Duration) error {
		if id == "a" {
			<-release
		}
		return nil
	}
	p, hist := &publisher{}, &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, History: hist, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Handle(sick("a", selected))
	waitFor(t, "a's restart sent", func() bool { return d.count("a") == 1 })
	h.Handle(sick("b", selected))
	if s := h.State("b"); !s.InFlight || !s.Pending {
		t.Fatalf("b's state %+v: want its restart claimed and waiting", s)
	}
	now := time.Now()
	h.Handle(events.Observed{Kind: events.DockerKill, ContainerID: "b", Name: "c-b", Labels: selected, Signal: "15", DockerTime: now})
	h.Handle(events.Observed{Kind: events.DockerDie, ContainerID: "b", Name: "c-b", Labels: selected, DockerTime: now})
	close(release)
	waitFor(t, "b's restart dropped", func() bool { return len(p.find(events.RestartSkipped, "c-b")) == 1 })
	if got, want := p.find(events.RestartSkipped, "c-b")[0].Data.Reason, ReasonDropped+": "+ReasonUserStopped; got != want {
		t.Errorf("b skipped for %q, want %q", got, want)
	}
	if n := d.count("b"); n != 0 {
		t.Errorf("b restarted %d times after the user stopped it", n)
	}
	if s := h.State("b"); s.InFlight || s.Pending || !s.UserStopped {
		t.Errorf("b's state %+v: want the claim ended and the user's stop kept", s)
	}
	// The restart never happened: it spent none of b's budget, live or as
	// a healer started later folds it from the history.
	var bHist []events.Event
	for _, e := range hist.all() {
		if e.Data.ContainerID == "b" {
			bHist = append(bHist, e)
		}
	}
	for what, s := range map[string]State{"live": h.State("b"), "folded from the history": FoldAll(bHist)} {
		if s.Attempt != 0 || s.FrameRestarts != 0 || !s.LastRestart.IsZero() || s.Claimed.Held {
			t.Errorf("b's state (%s) %+v: a dropped restart counted", what, s)
		}
		if !s.UserStopped {
			t.Errorf("b's state (%s) %+v: the user's stop is not kept", what, s)
		}
	}
}

// Case 5 in the healer: thousands of health events between restarts do not
// reset the frame.
func TestHealerFlappingKeepsTheFrame(t *testing.T) {
	d := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	p := &publisher{}
	now := t0
	h := New(Options{Host: "h", Label: "healme", Policy: with(func(p *config.Policy) { p.BetweenRestarts = 0 }), MaxConcurrent: 4, Docker: d, Publisher: p,
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, AfterFunc: func(time.Duration, func()) Timer { return stopped{} }})
	run(t, h)
	for i := range 3000 {
		now = t0.Add(time.Duration(i) * 50 * time.Millisecond)
		o := events.Observed{Kind: events.DockerHealthy, ContainerID: "f", Name: "c-f", Labels: selected, DockerTime: now, Received: time.Now()}
		if i%2 == 1 {
			o.Kind = events.DockerUnhealthy
		}
		h.Handle(o)
		if i%2 == 1 {
			waitFor(t, "restart done", func() bool { return !h.State("f").InFlight })
		}
	}
	if n := d.count("f"); n != 3 {
		t.Errorf("%d restarts in 150 s of flapping, want 3 (max_restarts_in_frame)", n)
	}
	s := h.State("f")
	if s.FrameRestarts != 3 || s.Attempt != 3 || !s.FrameStart.Equal(t0.Add(50*time.Millisecond)) {
		t.Errorf("state %+v: want frame of 3 from the first restart", s)
	}
}

type stopped struct{}

func (stopped) Stop() bool { return true }

// BenchmarkHandle is the decision path of an unhealthy event: select,
// policy, Decide, record, spawn, up to the restart request; the fake
// restart returns at once. It reports the decision time's p50 and p99 as
// the healer measures it (event read to restart sent).
func BenchmarkHandle(b *testing.B) {
	d := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	var lat []time.Duration
	var mu sync.Mutex
	h := New(Options{Host: "h", Label: "healme", Policy: with(func(p *config.Policy) {
		p.BetweenRestarts = 0
		p.MaxRestartsInFrame = 1 << 30
		p.GiveUpAfterRestarts = 0
	}), MaxConcurrent: 64, Docker: d, Publisher: discard{}, Log: slog.New(slog.DiscardHandler),
		DecisionLatency: func(d time.Duration) { mu.Lock(); lat = append(lat, d); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	o := sick("x", selected)
	b.ReportAllocs()
	for b.Loop() {
		o.Received = time.Now()
		h.Handle(o)
		for h.State("x").InFlight {
			runtime.Gosched()
		}
	}
	cancel()
	<-done
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[n/2].Nanoseconds()), "p50-decide-ns")
		b.ReportMetric(float64(lat[n*99/100].Nanoseconds()), "p99-decide-ns")
	}
}

// Case 2: which stop timeout a restart sends (-1: none, so the daemon uses
// the container's own) and its deadline.
func TestStopTimeoutChoice(t *testing.T) {
	t.Parallel()
	own := &scripted{inspect: events.Container{StopTimeout: 120 * time.Second}}
	none := &scripted{}
	label := func(p config.Policy, d time.Duration) config.Policy {
		p.StopTimeout, p.StopTimeoutFromLabel = d, true
		return p
	}
	set := with(func(p *config.Policy) { p.StopTimeout = 20 * time.Second })
	for _, tt := range []struct {
		name          string
		d             Docker
		p             config.Policy
		send, deadlne time.Duration
	}{
		{name: "default: the daemon picks, deadline after an inspect alongside", d: own, p: policy(), send: -1, deadlne: 0},
		{name: "configured, container has its own", d: own, p: set, send: -1, deadlne: 150 * time.Second},
		{name: "configured, container has none", d: none, p: set, send: 20 * time.Second, deadlne: 50 * time.Second},
		{name: "label wins over the container's own", d: own, p: label(policy(), 45*time.Second), send: 45 * time.Second, deadlne: 75 * time.Second},
		{name: "label capped", d: own, p: label(policy(), time.Hour), send: 5 * time.Minute, deadlne: 5*time.Minute + 30*time.Second},
		{name: "sub-second label: deadline from the rounded-up second", d: own, p: label(policy(), 300*time.Millisecond), send: 300 * time.Millisecond, deadlne: 31 * time.Second},
	} {
		h := New(Options{Label: "healme", Docker: tt.d, Publisher: discard{}, Log: slog.New(slog.DiscardHandler)})
		send, deadline := h.stopTimeout(context.Background(), "x", tt.p)
		if send != tt.send || deadline != tt.deadlne {
			t.Errorf("%s: sends %s, deadline %s; want %s, %s", tt.name, send, deadline, tt.send, tt.deadlne)
		}
	}
}

func (s *scripted) Recreate(context.Context, string, string, bool, func(string)) (string, error) {
	return "", errors.New("not in this test")
}

func (s *scripted) ComposeDependents(context.Context, events.Container) ([]events.Container, error) {
	return nil, nil
}

// A panic in a restart ends the container's claim. Before the restart was
// sent, the claim is dropped and spends nothing; after, it is spent, and a
// user's stop that follows is the user's, not taken for our restart's.
func TestAPanicInARestartEndsItsClaim(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		d := &scripted{restart: func(context.Context, string, time.Duration) error { panic("restart: a bug") }}
		p := &publisher{}
		h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
		run(t, h)
		h.Handle(sick("a", selected))
		waitFor(t, "the panic told", func() bool { return len(p.find(events.HealerPanic, "")) == 1 })
		waitFor(t, "a's claim ended", func() bool { s := h.State("a"); return !s.InFlight })
		h.Handle(events.Observed{Kind: events.DockerKill, ContainerID: "a", Name: "c-a", Labels: selected, Signal: "15", DockerTime: time.Now().Add(time.Second)})
		if s := h.State("a"); !s.UserStopped || s.Claimed.Held || s.Attempt != 1 {
			t.Errorf("a's state %+v: want the restart spent, and the stop after it the user's", s)
		}
	})
	t.Run("not sent", func(t *testing.T) {
		release := make(chan struct{})
		d := &scripted{restart: func(_ context.Context, id string, _ time.Duration) error {
			if id == "a" {
				<-release
			}
			return nil
		}}
		p := &publisher{}
		h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
		run(t, h)
		h.Handle(sick("a", selected))
		waitFor(t, "a's restart sent", func() bool { return d.count("a") == 1 })
		h.Handle(sick("b", selected))
		d.mu.Lock()
		d.inspectPanics = true // b's look before sending
		d.mu.Unlock()
		close(release)
		waitFor(t, "b's claim dropped", func() bool { return len(p.find(events.RestartSkipped, "c-b")) == 1 })
		if got, want := p.find(events.RestartSkipped, "c-b")[0].Data.Reason, ReasonDropped+": "+ReasonPanic; got != want {
			t.Errorf("b skipped for %q, want %q", got, want)
		}
		if s := h.State("b"); s.InFlight || s.Pending || s.Claimed.Held || s.Attempt != 0 || d.count("b") != 0 {
			t.Errorf("b's state %+v, %d restarts: want the claim dropped, nothing spent or sent", s, d.count("b"))
		}
	})
}
