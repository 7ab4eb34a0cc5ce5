package cleaner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// engine is a fake Docker whose inspect can differ from its list, as when a
// container changes between the sweep and the removal.
type engine struct {
	list    []events.Container
	inspect map[string]events.Container
	mu      sync.Mutex
	calls   []string
}

func (e *engine) List(context.Context) ([]events.Container, error) { return e.list, nil }
func (e *engine) Inspect(_ context.Context, id string) (events.Container, error) {
	c, ok := e.inspect[id]
	if !ok {
		return events.Container{}, errors.New("no such container")
	}
	return c, nil
}
func (e *engine) Stop(_ context.Context, id string, _ time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, "stop "+id)
	return nil
}
func (e *engine) Remove(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, "remove "+id)
	return nil
}

type pub struct{ evs []events.Event }

func (p *pub) Publish(e events.Event) { p.evs = append(p.evs, e) }

func sweep(t *testing.T, e *engine, dryRun bool) *pub {
	t.Helper()
	p := &pub{}
	c := New(Options{Host: "h", Label: "healme", Policy: config.Policy{CleanDuplicates: true, StopTimeout: time.Second},
		DryRun: dryRun, Docker: e, Publisher: p, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	c.Sweep(context.Background())
	return p
}

func selected(c events.Container) events.Container { c.Labels["healme"] = "true"; return c }

func TestSweepRemovesOnlyWhatIsUnchanged(t *testing.T) {
	canon := selected(compose("app_web_1", "a", true, time.Hour))
	dup := selected(compose("0123456789ab_app_web_1", "b", true, time.Hour))
	renamed := dup
	renamed.Name = "app_web_1_old"
	tests := []struct {
		name       string
		inspect    map[string]events.Container
		dryRun     bool
		wantCalls  int
		wantKind   events.Kind
		wantReason string
	}{
		{"unchanged: stop, then remove", map[string]events.Container{"a": canon, "b": dup}, false, 2, events.CleanupRemoved, ReasonDuplicate},
		{"renamed since the sweep", map[string]events.Container{"a": canon, "b": renamed}, false, 0, events.CleanupKept, ReasonChanged},
		{"gone since the sweep", map[string]events.Container{"a": canon}, false, 0, events.CleanupKept, ReasonChanged},
		{"sibling stopped since the sweep", map[string]events.Container{"a": func() events.Container { c := canon; c.Running = false; return c }(), "b": dup}, false, 0, events.CleanupKept, ReasonChanged},
		{"dry run", map[string]events.Container{"a": canon, "b": dup}, true, 0, events.CleanupFound, ReasonDryRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &engine{list: []events.Container{canon, dup}, inspect: tt.inspect}
			p := sweep(t, e, tt.dryRun)
			if len(e.calls) != tt.wantCalls {
				t.Errorf("calls %v, want %d", e.calls, tt.wantCalls)
			}
			last := p.evs[len(p.evs)-1]
			if last.Kind() != tt.wantKind || last.Data.Reason != tt.wantReason {
				t.Errorf("last event %s (%s), want %s (%s)", last.Kind(), last.Data.Reason, tt.wantKind, tt.wantReason)
			}
		})
	}
}

func TestSweepHonoursSelectionAndLabels(t *testing.T) {
	canon := compose("app_web_1", "a", true, time.Hour)
	dup := compose("0123456789ab_app_web_1", "b", true, time.Hour) // no healme label
	e := &engine{list: []events.Container{canon, dup}, inspect: map[string]events.Container{"a": canon, "b": dup}}
	if p := sweep(t, e, false); len(p.evs) != 0 || len(e.calls) != 0 {
		t.Errorf("acted on an unselected duplicate: %v %v", e.calls, p.evs)
	}
	off := selected(compose("0123456789ab_app_web_1", "b", true, time.Hour))
	off.Labels["healme.clean_duplicates"] = "false"
	e = &engine{list: []events.Container{canon, off}, inspect: map[string]events.Container{"a": canon, "b": off}}
	if p := sweep(t, e, false); len(p.evs) != 0 || len(e.calls) != 0 {
		t.Errorf("acted despite healme.clean_duplicates=false: %v", e.calls)
	}
}
