package heal

import (
	"github.com/healmydocker/healmydocker/internal/events"
)

// State is what the healer remembers of one container.
type State struct {
	// InFlight is set while a restart of the container runs.
	InFlight bool
}

// Verdict is what to do about an observation.
type Verdict int

const (
	// Ignore: nothing to decide, nothing to publish.
	Ignore Verdict = iota
	// Restart the container.
	Restart
	// Skip a restart that the observation would call for, saying why.
	Skip
)

// Decision is a verdict and its reason.
type Decision struct {
	Verdict Verdict
	Reason  string
}

// Reasons, stable strings that subscribers may match on.
const (
	ReasonUnhealthy   = "health_status: unhealthy"
	ReasonReconciled  = "unhealthy when listed"
	ReasonInFlight    = "a restart of this container is already running"
	ReasonReplayed    = "event replayed after a reconnect; the container's current state was reconciled instead"
	ReasonNotSelected = "not selected"
)

// Decide is the healer's whole judgement of one observation about a
// selected container. It is pure: no I/O, no clock.
func Decide(s State, o events.Observed) Decision {
	if o.Kind != events.DockerUnhealthy {
		return Decision{Verdict: Ignore}
	}
	switch {
	case o.Replayed:
		return Decision{Verdict: Skip, Reason: ReasonReplayed}
	case s.InFlight:
		return Decision{Verdict: Skip, Reason: ReasonInFlight}
	case o.Reconciled:
		return Decision{Verdict: Restart, Reason: ReasonReconciled}
	default:
		return Decision{Verdict: Restart, Reason: ReasonUnhealthy}
	}
}
