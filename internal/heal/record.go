package heal

import (
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// record publishes ev, folds it into the container's state and, if the
// state is rebuilt from it, appends it to the stored history; h.mu is held.
func (h *Healer) record(e *entry, ev events.Event) {
	h.o.Publisher.Publish(ev)
	before := e.state
	e.state = Fold(e.state, ev)
	if Stored(ev) {
		h.o.History.Publish(ev)
	}
	// Saved after its history event is queued: the store writes a state
	// only once the events it folds are stored.
	if stored(before) != stored(e.state) {
		h.o.States.Save(ev.Data.ContainerID, stored(e.state))
	}
}

// stored is the part of a state that outlives the healer.
func stored(s State) State {
	s.InFlight, s.Pending = false, false
	return s
}

// decisionFor is decision, naming the parent a dependent is decided for.
func (h *Healer) decisionFor(e *entry, k events.Kind, cause string, o Observation, d Decision, p config.Policy) events.Event {
	return h.decisionData(e, k, cause, o.Observed, d, p, events.Data{Parent: dependentParent(o)})
}

// dependentParent is the parent an observation decides a dependent for.
func dependentParent(o Observation) string {
	if o.Purpose != FromEvent {
		return o.Parent
	}
	return ""
}

// decision records a decision event with the policy's counters; h.mu is held.
func (h *Healer) decision(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy) events.Event {
	return h.decisionData(e, k, cause, o, d, p, events.Data{})
}

func (h *Healer) decisionData(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy, data events.Data) events.Event {
	data.Reason, data.Attempt, data.FrameRestarts, data.BackoffStep = d.Reason, d.Attempt, d.FrameRestarts, d.BackoffStep
	data.Action, data.DryRun = d.Action, p.DryRun
	if !d.FrameStart.IsZero() {
		fs := d.FrameStart.UTC()
		data.FrameStart = &fs
	}
	if !d.RetryAt.IsZero() {
		ra := d.RetryAt.UTC()
		data.RetryAt = &ra
	}
	ev := h.derived(k, cause, o, data)
	h.record(e, ev)
	return ev
}

func (h *Healer) derived(k events.Kind, cause string, o events.Observed, d events.Data) events.Event {
	d.Host, d.ContainerID, d.Container, d.Image, d.Cause = h.o.Host, o.ContainerID, o.Name, o.Image, cause
	return events.New(k, events.DerivedID(cause, k), h.o.Now(), o.Name, d)
}
