package heal

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// A paused container is recorded and left alone; when the pause's time is
// up it ends with an event, and a container still unhealthy is healed then.
func TestPauseEndsByItselfAndHeals(t *testing.T) {
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	d.restart = func(context.Context, string, time.Duration) error { return nil }
	p := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	h.Pause(events.Container{ID: "a", Name: "c-a", Labels: selected}, time.Now().Add(300*time.Millisecond), "upgrade")
	h.Handle(sick("a", selected))
	if s := p.find(events.RestartSkipped, "c-a"); len(s) != 1 || s[0].Data.Reason != ReasonMaintenance {
		t.Fatalf("skips %+v: want one, for maintenance", s)
	}
	if d.count("a") != 0 {
		t.Fatal("restarted while paused")
	}
	waitFor(t, "the pause to end", func() bool { return len(p.find(events.ControlResumed, "c-a")) == 1 })
	waitFor(t, "the restart after the pause", func() bool { return len(p.find(events.RestartSucceeded, "c-a")) == 1 })
	if h.State("a").Paused {
		t.Error("still paused after its end")
	}
}

// A pause survives a restart of the healer: it is folded from the history,
// and its end is still timed.
func TestPauseSurvivesARestart(t *testing.T) {
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	d.restart = func(context.Context, string, time.Duration) error { return nil }
	first := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: first, History: first, Log: slog.New(slog.DiscardHandler)})
	h.Pause(events.Container{ID: "a", Name: "c-a", Labels: selected}, time.Now().Add(400*time.Millisecond), "upgrade")

	p := &publisher{}
	h2 := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p,
		Initial: map[string]State{"a": FoldAll(first.find(events.ControlPaused, "c-a"))}, Log: slog.New(slog.DiscardHandler)})
	run(t, h2)
	h2.Handle(sick("a", selected))
	if s := p.find(events.RestartSkipped, "c-a"); len(s) != 1 || s[0].Data.Reason != ReasonMaintenance {
		t.Fatalf("skips %+v after the restart: want one, for maintenance", s)
	}
	waitFor(t, "the restart after the pause", func() bool { return len(p.find(events.RestartSucceeded, "c-a")) == 1 })
}

// Resume ends a pause at once, and heals what is still unhealthy.
func TestResumeHealsAtOnce(t *testing.T) {
	d := &scripted{inspect: events.Container{Running: true, Health: "unhealthy"}}
	d.restart = func(context.Context, string, time.Duration) error { return nil }
	p := &publisher{}
	h := New(Options{Host: "h", Label: "healme", Policy: policy(), MaxConcurrent: 1, Docker: d, Publisher: p, Log: slog.New(slog.DiscardHandler)})
	run(t, h)
	c := events.Container{ID: "a", Name: "c-a", Labels: selected}
	h.Pause(c, time.Time{}, "")
	h.Handle(sick("a", selected))
	if got := h.Paused(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("paused %v, want [a]", got)
	}
	if _, ok := h.Resume(c, "done"); !ok {
		t.Fatal("resume: not paused")
	}
	waitFor(t, "the restart after resume", func() bool { return len(p.find(events.RestartSucceeded, "c-a")) == 1 })
	if _, ok := h.Resume(c, "again"); ok {
		t.Error("a second resume found it paused")
	}
}
