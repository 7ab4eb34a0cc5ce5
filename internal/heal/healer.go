// Package heal owns the healing loop: it takes observations, decides with
// the pure Decide, restarts containers concurrently within a bound, and
// publishes every observation, decision and outcome.
package heal

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// Restarter restarts containers.
type Restarter interface {
	Restart(ctx context.Context, id string, stopTimeout time.Duration) error
}

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Options configure a Healer.
type Options struct {
	Host          string
	Label         string
	Policy        config.Policy
	MaxConcurrent int
	Docker        Restarter
	Publisher     Publisher
	Log           *slog.Logger
	// DecisionLatency gets the time from reading an event to sending its
	// restart request.
	DecisionLatency func(time.Duration)
	// Restarted is told of every finished restart, for metrics.
	Restarted func(container string, err error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Healer heals selected containers.
type Healer struct {
	o   Options
	sem chan struct{}
	wg  sync.WaitGroup
	// ctx is the lifetime of restarts: they outlive shutdown's cancel, since
	// a restart cut in half leaves the container stopped.
	ctx context.Context

	mu     sync.Mutex
	state  map[string]*State
	warned map[string]struct{}
}

// New returns a healer; Run must be running for restarts to happen.
func New(o Options) *Healer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DecisionLatency == nil {
		o.DecisionLatency = func(time.Duration) {}
	}
	if o.Restarted == nil {
		o.Restarted = func(string, error) {}
	}
	return &Healer{
		o:      o,
		sem:    make(chan struct{}, max(o.MaxConcurrent, 1)),
		ctx:    context.Background(),
		state:  map[string]*State{},
		warned: map[string]struct{}{},
	}
}

// Handle takes one observation. It never blocks on I/O, since it runs on
// the Docker event stream's goroutine.
func (h *Healer) Handle(o events.Observed) {
	if !config.Selected(o.Labels, h.o.Label) {
		return
	}
	h.o.Publisher.Publish(o.Event(h.o.Host))
	h.mu.Lock()
	st := h.state[o.ContainerID]
	if st == nil {
		st = &State{}
		h.state[o.ContainerID] = st
	}
	d := Decide(*st, o)
	h.o.Log.Debug("observed", "container", o.Name, "event", o.Kind, "reconciled", o.Reconciled, "replayed", o.Replayed, "verdict", d.Verdict)
	if d.Verdict == Restart {
		st.InFlight = true
	}
	if o.Kind == events.DockerDestroy && !st.InFlight {
		delete(h.state, o.ContainerID)
	}
	h.mu.Unlock()

	cause := o.ID(h.o.Host)
	switch d.Verdict {
	case Ignore:
		return
	case Skip:
		h.o.Log.Info("restart skipped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason)
		h.o.Publisher.Publish(h.derived(events.RestartSkipped, cause, o, events.Data{Reason: d.Reason}))
		return
	}
	policy := h.policy(o, cause)
	h.o.Publisher.Publish(h.derived(events.RestartRequested, cause, o, events.Data{Reason: d.Reason}))
	h.wg.Add(1)
	go h.restart(o, cause, d.Reason, policy)
}

func (h *Healer) policy(o events.Observed, cause string) config.Policy {
	p, errs := config.PolicyFor(h.o.Policy, o.Labels, h.o.Label)
	for _, e := range errs {
		key := o.ContainerID + "\x00" + e.Label + "\x00" + e.Value
		h.mu.Lock()
		_, seen := h.warned[key]
		h.warned[key] = struct{}{}
		h.mu.Unlock()
		if seen {
			continue
		}
		h.o.Log.Warn("invalid label value; using the default for this key", "container", o.Name, "label", e.Label, "value", e.Value, "expected", e.Expected)
		h.o.Publisher.Publish(h.derived(events.ConfigError, cause+"/"+e.Label, o, events.Data{
			Label: e.Label, Value: e.Value, Expected: e.Expected,
			Reason: "invalid label value; the default is used for this key",
		}))
	}
	return p
}

func (h *Healer) restart(o events.Observed, cause, reason string, p config.Policy) {
	defer h.wg.Done()
	h.sem <- struct{}{}
	defer func() { <-h.sem }()
	h.o.DecisionLatency(time.Since(o.Received))
	started := time.Now()
	err := h.o.Docker.Restart(h.ctx, o.ContainerID, p.StopTimeout)
	took := time.Since(started)
	h.mu.Lock()
	if st := h.state[o.ContainerID]; st != nil {
		st.InFlight = false
	}
	h.mu.Unlock()
	h.o.Restarted(o.Name, err)
	ms := float64(took.Microseconds()) / 1000
	if err != nil {
		h.o.Log.Error("restart failed", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", reason, "took", took, "err", err)
		h.o.Publisher.Publish(h.derived(events.RestartFailed, cause, o, events.Data{Reason: reason, Error: err.Error(), DurationMS: ms}))
		return
	}
	h.o.Log.Info("restarted", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", reason, "took", took)
	h.o.Publisher.Publish(h.derived(events.RestartSucceeded, cause, o, events.Data{Reason: reason, DurationMS: ms}))
}

func (h *Healer) derived(k events.Kind, cause string, o events.Observed, d events.Data) events.Event {
	d.Host, d.ContainerID, d.Container, d.Image, d.Cause = h.o.Host, o.ContainerID, o.Name, o.Image, cause
	return events.New(k, events.DerivedID(cause, k), h.o.Now(), o.Name, d)
}

// Run waits for ctx to end, then for running restarts to finish.
func (h *Healer) Run(ctx context.Context) error {
	<-ctx.Done()
	h.wg.Wait()
	return nil
}
