package heal

import (
	"strconv"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// Labels that say who owns a container.
const (
	swarmTaskLabel = "com.docker.swarm.task.id"
	oneOffLabel    = "com.docker.compose.oneoff"
)

// pausedLook is how often a container found paused (docker pause) and
// unhealthy is looked at again: the engine says nothing when it is unpaused.
const pausedLook = 5 * time.Minute

// exitSettle is how long a death waits for the events of a stop that may
// have caused it: the daemon logs kill after it signals, so a process that
// exits at once can die before its kill event arrives.
const exitSettle = 300 * time.Millisecond

// diedWithWindow is how soon after its network parent's die a dependent's
// die counts as dying with it: an app that loses its network (a VPN
// sidecar's) exits within seconds, or at once.
const diedWithWindow = 10 * time.Second

// Purpose says why an observation is decided on.
type Purpose int

const (
	// FromEvent: an event from the stream (or a listing), in Observed.
	FromEvent Purpose = iota
	// FromLook: an inspect, in Look, when a timer of ours fired; Kind is
	// the event that set the timer (a die), if any.
	FromLook
	// BeforeSend: an inspect of a container whose claimed restart waited
	// for a slot, just before it is sent.
	BeforeSend
	// AfterFailure: our restart of the container has just failed.
	AfterFailure
	// AsDependent: the container's network is a container's that the
	// healer just restarted; Look is the container now.
	AsDependent
	// ParentStarted: the container's network parent started again, not by
	// the healer (Docker's restart policy, a user); Look is the container now.
	ParentStarted
	// ParentRecreated: the container's network is container:<id> of a
	// removed container whose name a new one, Parent, now has.
	ParentRecreated
)

// Observation is what Decide is asked about.
type Observation struct {
	events.Observed
	Purpose Purpose
	// Look is what an inspect or listing found, for all but FromEvent;
	// Gone: the container no longer exists.
	Look events.Container
	Gone bool
	// Parent is the name of the container's network parent, for
	// AsDependent, ParentStarted and a look at a dependent; ParentDiedAt is
	// the parent's latest die, ParentRunning whether it runs now and is not
	// being restarted by the healer.
	Parent        string
	ParentDiedAt  time.Time
	ParentRunning bool
	// Compose: the parent is a compose service the container depends on
	// with restart: true, not its network.
	Compose bool
	// Cycle: the container was already acted on in this chain of parents.
	Cycle bool
	// ParentNotSelected: the parent is not the healer's to watch.
	ParentNotSelected bool
	// ParentDiedRecently: a selected container died within diedWithWindow,
	// so a die may be a dependent's dying with it and is looked at.
	ParentDiedRecently bool
}

// Decide is the healer's whole judgement about a selected container: a pure
// function of its state (not including o), the observation, its policy and
// the time. It is the only place where the healer chooses an action.
func Decide(s State, o Observation, p config.Policy, now time.Time) Decision {
	action := p.Effective()
	if action == config.ActionNone {
		// Watched and recorded only.
		return Decision{Verdict: Ignore}
	}
	if s.DryRunCounts && !p.DryRun {
		// What monitor-only mode decided was never done: real healing
		// starts with its whole budget.
		s.LastRestart, s.Attempt, s.FrameStart, s.FrameRestarts, s.BackoffStep, s.GaveUp = time.Time{}, 0, time.Time{}, 0, 0, false
	}
	d := decide(s, o, p, now)
	if d.Verdict != Ignore && s.PausedAt(now) {
		// Recorded, never acted on; looked at again when the pause ends.
		return Decision{Verdict: Skip, Reason: ReasonMaintenance, RetryAt: s.PausedUntil}
	}
	if d.Verdict == Recreate && action != config.ActionRestart {
		// Monitor-only and notify touch nothing: a recreate is told only.
		return Decision{Verdict: Skip, Reason: ReasonRecreateNotActed + action}
	}
	if d.Verdict != Restart || action == config.ActionRestart {
		return d
	}
	if action == config.ActionStop && o.Purpose == AsDependent {
		// It is not unhealthy, only without network: restarting is the
		// remedy, stopping a healthy container would not be.
		return d
	}
	if action == config.ActionStop && o.Purpose == FromLook && !o.Look.Running && s.Failures == 0 {
		// Stopping is the whole remedy: what is not running stays so.
		return Decision{Verdict: Skip, Reason: ReasonActionStop}
	}
	d.Action = action
	return d
}

func decide(s State, o Observation, p config.Policy, now time.Time) Decision {
	if SwarmTask(o.Labels) {
		return leaveAlone(s, o, ReasonSwarm)
	}
	switch o.Purpose {
	case BeforeSend:
		switch {
		case o.Gone:
			return Decision{Verdict: Skip, Reason: ReasonGone}
		case s.UserStopped:
			return Decision{Verdict: Skip, Reason: ReasonUserStopped}
		}
		return Decision{Verdict: Restart, Reason: "", Attempt: s.Attempt, FrameStart: s.FrameStart, FrameRestarts: s.FrameRestarts, BackoffStep: s.BackoffStep}
	case AfterFailure:
		// Looked at again when the policy allows the next restart.
		d := limit(s, p, now, ReasonRetry)
		switch d.Verdict {
		case Restart:
			return Decision{Verdict: LookAgain, Reason: ReasonRetry, RetryAt: now}
		case Skip:
			if d.RetryAt.IsZero() {
				return d
			}
			return Decision{Verdict: LookAgain, Reason: d.Reason, RetryAt: d.RetryAt}
		}
		return d
	case AsDependent, ParentStarted:
		return decideDependent(s, o, p, now)
	case ParentRecreated:
		return decideRecreate(s, o, p)
	case FromLook:
		return decideLook(s, o, p, now)
	}

	switch o.Kind {
	case events.DockerUnhealthy:
		switch {
		case o.Replayed:
			return Decision{Verdict: Skip, Reason: ReasonReplayed}
		case s.UserStopped:
			// A probe that fails while the user's stop runs is no reason
			// to fight the stop.
			return Decision{Verdict: Skip, Reason: ReasonUserStopped}
		case s.InFlight:
			return Decision{Verdict: Skip, Reason: ReasonInFlight}
		case o.Reconciled:
			return limit(s, p, now, ReasonReconciled)
		}
		return limit(s, p, now, ReasonUnhealthy)
	case events.DockerDie:
		switch {
		case s.InFlight:
			return Decision{Verdict: Ignore}
		case o.Replayed:
			return Decision{Verdict: Skip, Reason: ReasonReplayed}
		case s.Ours && s.ours(o.DockerTime):
			// The death our own restart caused: its outcome decides.
			return Decision{Verdict: Ignore}
		case !p.HealExited && s.Failures == 0 && !o.ParentDiedRecently:
			return Decision{Verdict: Ignore}
		}
		// The stop's kill may come after the die: decided once it is in.
		return Decision{Verdict: LookAgain, RetryAt: now.Add(exitSettle)}
	}
	return Decision{Verdict: Ignore}
}

// decideLook decides on what an inspect found when a timer of ours fired.
func decideLook(s State, o Observation, p config.Policy, now time.Time) Decision {
	c := o.Look
	switch {
	case o.Gone, s.InFlight:
		return Decision{Verdict: Ignore}
	case s.OwedParent != "":
		// A restart owed to the parent, skipped for the budget until now.
		o.Purpose, o.Parent = AsDependent, s.OwedParent
		return decideDependent(s, o, p, now)
	case o.Parent != "" && !c.Running && !s.UserStopped && s.diedWith(o.ParentDiedAt):
		return decideDependent(s, o, p, now)
	case s.UserStopped:
		return Decision{Verdict: Skip, Reason: ReasonUserStopped}
	case c.Paused:
		// No event says when it is unpaused: looked at again now and then.
		return Decision{Verdict: Skip, Reason: ReasonPaused, RetryAt: now.Add(pausedLook)}
	case c.Running && c.Health == "unhealthy":
		return limit(s, p, now, ReasonReconciled)
	case c.Running:
		if o.Kind == events.DockerDie {
			return Decision{Verdict: Skip, Reason: ReasonRunningAgain}
		}
		return Decision{Verdict: Ignore}
	case c.RestartsItself:
		return Decision{Verdict: Skip, Reason: ReasonOwnPolicy}
	case s.Failures > 0 && (!s.Died || !s.DiedAt.After(s.RestartDone.Add(exitSettle))):
		// Stopped by our own restart, which failed half-way: ours to finish.
		// A death after that is the container's own, judged as any other.
		return limit(s, p, now, ReasonRetry+": "+s.LastError)
	case !p.HealExited:
		return Decision{Verdict: Ignore}
	case OneOff(o.Labels):
		return leaveAlone(s, o, ReasonOneOff)
	case c.ExitCode == 0 && !p.HealExitZero:
		return Decision{Verdict: Skip, Reason: ReasonExitZero}
	}
	return limit(s, p, now, "exited with code "+strconv.Itoa(c.ExitCode))
}

// decideDependent decides on a container whose network parent was
// restarted or started again, or that died with it: with its own state and
// policy, so its budget, give-up and a user's stop hold.
func decideDependent(s State, o Observation, p config.Policy, now time.Time) Decision {
	c := o.Look
	switch {
	case o.Gone:
		return Decision{Verdict: Ignore}
	case o.Cycle:
		return Decision{Verdict: Skip, Reason: ReasonCycle}
	case o.ParentNotSelected:
		return Decision{Verdict: Skip, Reason: ReasonNotSelected}
	case s.InFlight:
		return Decision{Verdict: Skip, Reason: ReasonInFlight}
	case s.UserStopped:
		return Decision{Verdict: Skip, Reason: ReasonUserStopped}
	case c.Paused:
		return Decision{Verdict: Skip, Reason: ReasonPaused}
	case c.Running && o.Purpose == AsDependent && o.Compose:
		return limit(s, p, now, ComposeRestartedReason(o.Parent))
	case c.Running && o.Purpose == AsDependent:
		// Running without a network: the parent's is new.
		return limit(s, p, now, ParentRestartedReason(o.Parent))
	case c.Running:
		return Decision{Verdict: Ignore}
	case !s.diedWith(o.ParentDiedAt):
		if o.Purpose == AsDependent {
			// Stopped long before, or dead by itself: its own events decide.
			return Decision{Verdict: Skip, Reason: ReasonNotRunning}
		}
		return Decision{Verdict: Ignore}
	case !o.ParentRunning:
		// The parent's start decides: until then it cannot start.
		return Decision{Verdict: Skip, Reason: ReasonParentDown}
	}
	return limit(s, p, now, DiedWithParentReason(o.Parent))
}

// decideRecreate decides on a container left pointing at the removed
// network parent: recreated on the new one (it cannot run otherwise),
// started if it ran or died with the old one, unless a user stopped it.
func decideRecreate(s State, o Observation, p config.Policy) Decision {
	switch {
	case o.Gone:
		return Decision{Verdict: Ignore}
	case !p.Recreate:
		return Decision{Verdict: Skip, Reason: ReasonRecreateOff}
	case s.InFlight:
		return Decision{Verdict: Skip, Reason: ReasonInFlight}
	}
	start := !s.UserStopped && !o.Look.Paused && (o.Look.Running || s.diedWith(o.ParentDiedAt))
	return Decision{Verdict: Recreate, Reason: ParentRecreatedReason(o.Parent), Start: start}
}

// leaveAlone skips a container that its owner heals, telling so once.
func leaveAlone(s State, o Observation, reason string) Decision {
	acts := o.Purpose != FromEvent || o.Kind == events.DockerUnhealthy || o.Kind == events.DockerDie
	if !acts || s.LeftAlone == reason {
		return Decision{Verdict: Ignore}
	}
	return Decision{Verdict: Skip, Reason: reason}
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }
