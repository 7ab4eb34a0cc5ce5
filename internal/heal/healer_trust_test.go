package heal

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// withDeps is scripted whose Dependents returns deps.
type withDeps struct {
	*scripted
	deps []events.Container
}

func (w *withDeps) Dependents(context.Context, string, string) ([]events.Container, error) {
	return w.deps, nil
}

// A dependent labelled action=notify is only decided and told when its
// parent is restarted, never restarted.
func TestDependentWithActionNotifyIsNotRestarted(t *testing.T) {
	s := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	d := &withDeps{scripted: s, deps: []events.Container{{ID: "dep", Name: "c-dep", Running: true,
		Labels: map[string]string{"healme": "true", "healme.action": "notify"}}}}
	p := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Handle(sick("a", selected))
	waitFor(t, "dep decided", func() bool { return len(p.find(events.RestartRequested, "c-dep")) == 1 })
	// The decision is all: Run waits for what the healer spawned.
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.wg.Wait()
	if r := p.find(events.RestartRequested, "c-dep")[0]; r.Data.Action != config.ActionNotify {
		t.Errorf("dependent's decision action %q, want notify", r.Data.Action)
	}
	if n := s.count("dep"); n != 0 {
		t.Errorf("dependent with action=notify restarted %d times", n)
	}
}

// A queued restart dropped because of a pause ends our claim: the user's
// docker stop during maintenance is the user's, and resume leaves it stopped.
func TestStopDuringPauseAfterADroppedClaimStaysStopped(t *testing.T) {
	release := make(chan struct{})
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	d.restart = func(_ context.Context, id string, _ time.Duration) error {
		if id == "a" {
			<-release
		}
		return nil
	}
	p := &publisher{}
	pol := with(func(p *config.Policy) { p.BetweenRestarts = 0 })
	h := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Handle(sick("a", selected))
	waitFor(t, "a's restart sent", func() bool { return d.count("a") == 1 })
	h.Handle(sick("b", selected)) // claimed, waits for a slot
	cb := events.Container{ID: "b", Name: "c-b", Labels: selected}
	h.Pause(cb, time.Time{}, "maintenance")
	close(release)
	waitFor(t, "b's queued restart dropped", func() bool { return len(p.find(events.RestartSkipped, "c-b")) == 1 })
	// The user stops b during maintenance.
	now := time.Now()
	h.Handle(events.Observed{Kind: events.DockerKill, ContainerID: "b", Name: "c-b", Labels: selected, Signal: "15", DockerTime: now})
	h.Handle(events.Observed{Kind: events.DockerDie, ContainerID: "b", Name: "c-b", Labels: selected, DockerTime: now})
	h.Handle(events.Observed{Kind: events.DockerStop, ContainerID: "b", Name: "c-b", Labels: selected, DockerTime: now})
	if s := h.State("b"); !s.UserStopped {
		t.Errorf("b's state %+v: the user's stop was taken for ours", s)
	}
	d.mu.Lock()
	d.inspect = events.Container{Running: false, ExitCode: 143}
	d.mu.Unlock()
	h.Resume(cb, "done")
	// The look after the resume decides, and says so: skipped for the stop.
	waitFor(t, "the look after the resume to skip b for the user's stop", func() bool { return len(userStopSkips(p, "c-b")) >= 1 })
	if n := d.count("b"); n != 0 {
		t.Errorf("b restarted %d times after the user's docker stop", n)
	}
}

// Decisions made in dry run do not use up the real budget: after a dry-run
// week that gave up, real healing starts with its whole budget.
func TestDryRunBudgetDoesNotCarryIntoRealMode(t *testing.T) {
	d := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	dry := with(func(p *config.Policy) {
		p.DryRun = true
		p.BetweenRestarts = 0
		p.GiveUpAfterRestarts = 3
		p.MaxRestartsInFrame = 100
	})
	hist := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: dry, MaxConcurrent: 1, Docker: d, Publisher: &publisher{}, History: hist, Log: slog.New(slog.DiscardHandler)})
	for i := range 4 {
		o := sick("a", selected)
		o.DockerTime = time.Unix(0, int64(i+1))
		h.Handle(o)
	}
	if d.count("a") != 0 {
		t.Fatal("dry run restarted")
	}
	real := dry
	real.DryRun = false
	p := &publisher{}
	h2 := New(Options{Host: "h", Label: "healme", Policy: real, MaxConcurrent: 1, Docker: d, Publisher: p,
		Initial: map[string]State{"a": FoldAll(hist.evs)}, Log: slog.New(slog.DiscardHandler)})
	run(t, h2)
	o := sick("a", selected)
	o.DockerTime = time.Unix(0, 99)
	h2.Handle(o)
	if s := p.find(events.RestartSkipped, "c-a"); len(s) > 0 {
		t.Errorf("first real unhealthy after dry run skipped: %q (never restarted before)", s[0].Data.Reason)
	}
}

// A restart never sent ("healer stopping") is no failure: a container that
// later exits 0 by itself is left alone with heal_exited off.
func TestNeverSentRestartLeavesACleanExitAlone(t *testing.T) {
	d := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }, inspect: events.Container{Running: false, ExitCode: 0}}
	pol := with(func(p *config.Policy) { p.HealExited = false; p.BetweenRestarts = 0 })
	hist := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: &publisher{}, History: hist, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = h.Run(ctx) // shutting down
	h.Handle(sick("a", selected))
	p := &publisher{}
	h3 := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: p,
		Initial: map[string]State{"a": FoldAll(hist.evs)}, Log: slog.New(slog.DiscardHandler)})
	run(t, h3)
	h3.Handle(events.Observed{Kind: events.DockerDie, ContainerID: "a", Name: "c-a", Labels: selected, DockerTime: time.Now()})
	// Decided at once (nothing to do) unless a look was asked for: then
	// wait for the look's inspect and for the work it spawned.
	h3.mu.Lock()
	looking := h3.entries["a"] != nil && h3.entries["a"].timer != nil
	h3.mu.Unlock()
	if looking {
		waitFor(t, "the look after the exit", func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.inspects > 0 })
		h3.wg.Wait()
	}
	if n := d.count("a"); n != 0 {
		t.Errorf("a exited 0 by itself with heal_exited=false, and was restarted %d times", n)
	}
}

// A healthy dependent labelled action=stop is restarted with its parent,
// not stopped: it lost its network, it is not unhealthy.
func TestDependentWithActionStopIsRestartedNotStopped(t *testing.T) {
	s := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	d := &withDeps{scripted: s, deps: []events.Container{{ID: "dep", Name: "c-dep", Running: true, Health: "healthy",
		Labels: map[string]string{"healme": "true", "healme.action": "stop"}}}}
	p := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Handle(sick("a", selected))
	waitFor(t, "dep outcome", func() bool {
		return len(p.find(events.Stopped, "c-dep"))+len(p.find(events.RestartSucceeded, "c-dep")) > 0
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stops) != 0 {
		t.Errorf("healthy dependent stopped %v because its parent restarted; UserStopped=%v", s.stops, h.State("dep").UserStopped)
	}
}

// The healer died between writing a restart decision and sending it
// (decisions are written ahead). The next healer takes the claim as ended,
// so a later docker stop is the user's, and the end of a pause leaves the
// container stopped.
func TestUnfinishedClaimOfACrashedHealerIsNotOurs(t *testing.T) {
	d := &scripted{restart: func(context.Context, string, time.Duration) error { return nil }}
	pol := with(func(p *config.Policy) { p.BetweenRestarts = 0 })
	req := events.New(events.RestartRequested, "r1", time.Now().Add(-time.Hour), "c-a",
		events.Data{Host: "h", ContainerID: "a", Reason: ReasonUnhealthy, Attempt: 1, FrameRestarts: 1, BackoffStep: 1})
	p := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: p,
		Initial: map[string]State{"a": FoldAll([]events.Event{req})}, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	c := events.Container{ID: "a", Name: "c-a", Labels: selected}
	h.Pause(c, time.Now().Add(200*time.Millisecond), "upgrade")
	now := time.Now()
	h.Handle(events.Observed{Kind: events.DockerKill, ContainerID: "a", Name: "c-a", Labels: selected, Signal: "15", DockerTime: now})
	h.Handle(events.Observed{Kind: events.DockerDie, ContainerID: "a", Name: "c-a", Labels: selected, DockerTime: now})
	h.Handle(events.Observed{Kind: events.DockerStop, ContainerID: "a", Name: "c-a", Labels: selected, DockerTime: now})
	d.mu.Lock()
	d.inspect = events.Container{Running: false, ExitCode: 143}
	d.mu.Unlock()
	waitFor(t, "the pause to end", func() bool { return len(p.find(events.ControlResumed, "c-a")) == 1 })
	waitFor(t, "the look at the pause's end to skip a for the user's stop", func() bool { return len(userStopSkips(p, "c-a")) >= 1 })
	if n := d.count("a"); n != 0 {
		t.Errorf("user's docker stop undone: restarted %d times when the pause ended (UserStopped=%v)", n, h.State("a").UserStopped)
	}
}

// A panic in a restart (on some container's input) frees the slot and the
// claim: the container is healed at its next need, others meanwhile.
func TestPanicInARestartFreesItsSlotAndClaim(t *testing.T) {
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	var calls int
	d.restart = func(context.Context, string, time.Duration) error {
		d.mu.Lock()
		calls++
		n := calls
		d.mu.Unlock()
		if n == 1 {
			panic("hostile input")
		}
		return nil
	}
	p := &publisher{}
	pol := with(func(p *config.Policy) { p.BetweenRestarts = 0 })
	h := New(Options{Host: "h", Label: "healme", Policy: pol, MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Handle(sick("a", selected))
	waitFor(t, "the panic published", func() bool { return len(p.find(events.HealerPanic, "")) == 1 })
	waitFor(t, "a's claim freed", func() bool { return !h.State("a").InFlight })
	h.Handle(sick("b", selected))
	waitFor(t, "b healed in the freed slot", func() bool { return len(p.find(events.RestartSucceeded, "c-b")) == 1 })
	h.Handle(sick("a", selected))
	waitFor(t, "a healed at its next need", func() bool { return len(p.find(events.RestartSucceeded, "c-a")) == 1 })
}

// userStopSkips are the decisions that left container alone for its
// user's stop.
func userStopSkips(p *publisher, container string) []events.Event {
	var out []events.Event
	for _, e := range p.find(events.RestartSkipped, container) {
		if e.Data.Reason == ReasonUserStopped {
			out = append(out, e)
		}
	}
	return out
}
