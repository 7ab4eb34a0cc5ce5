package heal

import (
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Verdict is what to do about an observation.
type Verdict int

const (
	// Ignore: nothing to decide, nothing to publish.
	Ignore Verdict = iota
	// Restart the container (an exited one is started by it): for being
	// unhealthy, having crashed, a failed restart, or a restarted parent.
	Restart
	// Skip a restart that the observation would call for, saying why; with
	// RetryAt set, the container is looked at again then.
	Skip
	// GiveUp: stop healing the container until it recovers or is recreated.
	GiveUp
	// LookAgain: not conclusive yet; look at the container again at RetryAt.
	LookAgain
	// Recreate the container on its recreated network parent, and start
	// it if Start.
	Recreate
)

func (v Verdict) String() string {
	return [...]string{"ignore", "restart", "skip", "give_up", "look_again", "recreate"}[v]
}

// Decision is a verdict, its reason, when to look again, and for a restart
// the policy's counters that are stored for the next decision.
type Decision struct {
	Verdict       Verdict
	Reason        string
	RetryAt       time.Time
	Attempt       int
	FrameStart    time.Time
	FrameRestarts int
	BackoffStep   int
	// Action, for a restart, is what is done instead when it is not one:
	// config.ActionStop or config.ActionNotify; empty means restart.
	Action string
	// Start: the recreated container is started.
	Start bool
}

// Reasons, stable strings that subscribers and the notifier match on.
const (
	ReasonUnhealthy        = "health_status: unhealthy"
	ReasonReconciled       = "unhealthy when listed"
	ReasonExited           = "exited"
	ReasonInFlight         = "a restart of this container is already running"
	ReasonReplayed         = "event replayed after a reconnect; the container's current state was reconciled instead"
	ReasonGivenUp          = "the healer gave up on this container"
	ReasonBudgetSpent      = "restarted max_checks_to_give_up times without staying healthy"
	ReasonStartGrace       = "within start_grace of the container's start"
	ReasonBetweenRestarts  = "within seconds_between_restarts of the last restart"
	ReasonFrameLimit       = events.ReasonFrameLimit
	ReasonBackoff          = "exponential backoff"
	ReasonUserStopped      = "stopped by a user or API call"
	ReasonExitZero         = "exited with code 0"
	ReasonRunningAgain     = "running again"
	ReasonOwnPolicy        = "its own restart policy restarts it"
	ReasonDependent        = "network_mode container: of a restarted container"
	ReasonParentDown       = "died with its network parent; waiting for the parent to run again"
	ReasonRecreateOff      = "its network parent was recreated; recreate=false, so it is only reported"
	ReasonRecreateNotActed = "its network parent was recreated; only reported under action="
	ReasonNotSelected      = "its network parent is not selected: left alone"
	ReasonCycle            = "its dependency chain loops back to itself: left alone"
	ReasonRetry            = "retry after a failed restart"
	ReasonSwarm            = "a Swarm task: Swarm replaces it"
	ReasonOneOff           = "a compose one-off (docker compose run): not started again"
	ReasonNotRunning       = "not running: left to its own healing"
	ReasonGone             = "the container is gone"
	ReasonPaused           = "paused by a user or API call"
	ReasonActionStop       = "action=stop: left stopped"
	ReasonMaintenance      = "paused for maintenance (healer pause)"
	// ReasonDropped starts the reason of a claimed restart that was never
	// sent: nothing of ours is in flight after it.
	ReasonDropped = "queued restart dropped"
	// ReasonPanic follows ReasonDropped when a bug ended the claim (told as
	// healer.panic).
	ReasonPanic = "a bug in the healer (healer.panic)"
)

// ParentRestartedReason is the reason of a dependent's restart because
// the healer restarted its network parent.
func ParentRestartedReason(parent string) string {
	return "its network parent " + parent + " was restarted"
}

// ComposeRestartedReason is the reason of a restart because the healer
// restarted a compose service the container depends on with restart: true.
func ComposeRestartedReason(parent string) string {
	return "it depends on " + parent + " (compose depends_on restart: true), which was restarted"
}

// DiedWithParentReason is the reason of a dependent's start after it died
// with its network parent, which runs again.
func DiedWithParentReason(parent string) string {
	return "it died with its network parent " + parent + ", which runs again"
}

// ParentRecreatedReason is the reason of a dependent's recreate.
func ParentRecreatedReason(parent string) string {
	return "its network parent " + parent + " was recreated"
}
