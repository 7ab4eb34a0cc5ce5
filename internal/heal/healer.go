// Package heal owns the healing loop: it folds each container's events into
// a State, asks the pure Decide what to do about every observation, turns
// the decision into Docker calls, timers and events, restarts containers
// concurrently within a bound, and publishes every observation, decision and
// outcome. Its memory is the State per container, rebuilt at start from the
// stored history.
package heal

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// Docker is what the healer needs of the engine.
type Docker interface {
	Restart(ctx context.Context, id string, stopTimeout time.Duration) error
	Stop(ctx context.Context, id string, stopTimeout time.Duration) error
	// LastWords reads, with one inspect, the output of the last failed
	// health probe and, when lines > 0, the log tail.
	LastWords(ctx context.Context, id string, lines, maxBytes int) (failedProbe, logTail string, err error)
	Inspect(ctx context.Context, id string) (events.Container, error)
	Dependents(ctx context.Context, parentID, parentName string) ([]events.Container, error)
	// ComposeDependents lists the containers of parent's compose project
	// that depend on its service with restart: true.
	ComposeDependents(ctx context.Context, parent events.Container) ([]events.Container, error)
	// Recreate replaces id by a copy on container:<parentID>'s network,
	// started if start, and returns the copy's id; on an error the old
	// container is left as it was.
	// created is told the new id before the copy starts.
	Recreate(ctx context.Context, id, parentID string, start bool, created func(newID string)) (string, error)
}

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Options configure a Healer.
type Options struct {
	Host      string
	Label     string
	Namespace string
	Policy    config.Policy
	// MaxConcurrent bounds restarts running at once.
	MaxConcurrent int
	Docker        Docker
	// Publisher gets every event; History gets those about a container,
	// for rebuilding state after a restart of the healer.
	Publisher Publisher
	History   Publisher
	// States keeps each container's state for the next start.
	States StateStore
	// Initial is each container's state at start, by container id.
	Initial map[string]State
	Log     *slog.Logger
	// DecisionLatency gets the time from reading an event to sending its
	// restart request.
	DecisionLatency func(time.Duration)
	// Restarted is told of every finished restart, for metrics.
	Restarted func(container string, err error)
	// Healed gets the time from the daemon's event to the end of a
	// successful restart; nil drops it.
	Healed func(time.Duration)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterFunc runs f after d, for the looks that decisions ask for; nil
	// means time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) Timer
	// MaxLabelStopTimeout caps a stop timeout asked for by a label; zero
	// means 5 minutes.
	MaxLabelStopTimeout time.Duration
	// RestartMargin is added to a restart's stop timeout for its deadline;
	// zero means 30 s.
	RestartMargin time.Duration
}

// StateStore keeps each container's state across restarts of the healer.
// It must not block: the event stream waits on the healer.
type StateStore interface {
	// Save is told each container's state when it changes.
	Save(id string, s State)
	// Forget is told of a container that is gone.
	Forget(id string)
}

// Timer is a timer that AfterFunc started.
type Timer interface {
	Stop() bool
}

// entry is the healer's memory of one container.
type entry struct {
	state State
	timer Timer
	// due is when timer fires; later is a look asked for after it.
	due, later time.Time
	// name is the container's name when first seen, before a rename aside.
	name string
}

// Healer heals selected containers.
type Healer struct {
	o   Options
	sem chan struct{}
	wg  sync.WaitGroup
	// ctx is the lifetime of restarts: they outlive shutdown's cancel, since
	// a restart cut in half leaves the container stopped.
	ctx context.Context

	overrides *config.Overrides

	mu      sync.Mutex
	entries map[string]*entry
	warned  map[string]struct{}
	stopped bool
	// lastDie is the daemon time of the latest die of a selected
	// container: a die soon after it may be a dependent's dying with it.
	lastDie time.Time
	// gone maps the name of a removed selected container to it, so that a
	// new container under that name takes over its dependents.
	gone map[string]goneParent
}

// New returns a healer; Run must be running for restarts to happen.
func New(o Options) *Healer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if o.MaxLabelStopTimeout <= 0 {
		o.MaxLabelStopTimeout = 5 * time.Minute
	}
	if o.RestartMargin <= 0 {
		o.RestartMargin = 30 * time.Second
	}
	if o.DecisionLatency == nil {
		o.DecisionLatency = func(time.Duration) {}
	}
	if o.Restarted == nil {
		o.Restarted = func(string, error) {}
	}
	if o.History == nil {
		o.History = discard{}
	}
	if o.States == nil {
		o.States = discard{}
	}
	h := &Healer{
		o:         o,
		sem:       make(chan struct{}, max(o.MaxConcurrent, 1)),
		ctx:       context.Background(),
		entries:   map[string]*entry{},
		warned:    map[string]struct{}{},
		overrides: config.NewOverrides(o.Label),
		gone:      map[string]goneParent{},
	}
	for id, s := range o.Initial {
		s.InFlight, s.Pending = false, false
		e := &entry{state: s}
		h.entries[id] = e
		// A pause with an end survives the healer's restart: it still ends
		// by itself, and the container is looked at then.
		if e.state.Paused && !e.state.PausedUntil.IsZero() {
			h.scheduleLook(e, events.Observed{ContainerID: id}, "control/"+events.ShortID(id), e.state.PausedUntil)
		}
	}
	return h
}

type discard struct{}

func (discard) Publish(events.Event) {}
func (discard) Save(string, State)   {}
func (discard) Forget(string)        {}

// State returns the healer's state of a container, for tests and status.
func (h *Healer) State(id string) State {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[id]; e != nil {
		return e.state
	}
	return State{}
}

// spawnLocked runs f in its own goroutine unless the healer is stopping,
// and reports whether it did; Run waits for what it spawned. h.mu is held.
func (h *Healer) spawnLocked(f func()) bool {
	if h.stopped {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = (&safe.Guard{Log: h.o.Log, Pub: h.o.Publisher, Host: h.o.Host}).Call("healer: spawned work", nil, f)
	}()
	return true
}

// entry returns the container's memory; h.mu is held.
func (h *Healer) entry(id string) *entry {
	e := h.entries[id]
	if e == nil {
		e = &entry{}
		h.entries[id] = e
	}
	return e
}

func (h *Healer) forget(id string, e *entry) {
	if e.timer != nil {
		e.timer.Stop()
	}
	if !e.state.InFlight {
		delete(h.entries, id)
		h.o.States.Forget(id)
	}
}

// Run waits for ctx to end, then for running restarts to finish.
func (h *Healer) Run(ctx context.Context) error {
	<-ctx.Done()
	h.mu.Lock()
	h.stopped = true
	for _, e := range h.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}
