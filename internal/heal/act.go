package heal

import (
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// act turns a decision into events, a timer or a restart, and reports
// whether it spawned a restart; h.mu is held.
func (h *Healer) act(e *entry, o Observation, cause string, d Decision, p config.Policy) bool {
	switch d.Verdict {
	case Skip:
		h.o.Log.Info("restart skipped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "retry_at", d.RetryAt, "parent", o.Parent)
		h.decisionFor(e, events.RestartSkipped, cause, o, d, p)
		if !d.RetryAt.IsZero() {
			if o.Purpose == AsDependent {
				// Owed: the look then finds it running and must know why.
				e.state.OwedParent = o.Parent
			}
			h.scheduleLook(e, o.Observed, cause, d.RetryAt)
		}
	case LookAgain:
		h.scheduleLook(e, o.Observed, cause, d.RetryAt)
	case GiveUp:
		h.o.Log.Warn("giving up on container", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "attempts", d.Attempt)
		e.state.OwedParent = ""
		h.decisionFor(e, events.GaveUp, cause, o, d, p)
	case Restart:
		req := h.decisionFor(e, events.RestartRequested, cause, o, d, p)
		if d.Action == config.ActionNotify {
			// Decided and told; nothing is sent to Docker.
			h.o.Log.Info("restart decided, not sent (action notify)", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "dry_run", p.DryRun)
			return false
		}
		e.state.InFlight, e.state.Pending, e.state.OwedParent = true, true, ""
		if !h.spawnLocked(func() { h.restart(o.Observed, cause, req, p) }) {
			e.state.InFlight, e.state.Pending = false, false
			// Never sent, so not a failure: nothing of ours is in flight.
			h.record(e, h.derived(events.RestartSkipped, cause, o.Observed, events.Data{Reason: ReasonDropped + ": healer stopping"}))
			return false
		}
		return true
	}
	return false
}
