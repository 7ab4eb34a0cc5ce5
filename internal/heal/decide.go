package heal

import (
	"strconv"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
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
	ReasonGiveUp           = "restarted max_checks_to_give_up times without staying healthy"
	ReasonStartGrace       = "within start_grace of the container's start"
	ReasonBetween          = "within seconds_between_restarts of the last restart"
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

// State is what the healer knows of one container, folded from its events
// by Fold. It is a plain value that can be stored as JSON; the fields marked
// runtime belong to the running healer and are zero after a start-up.
type State struct {
	// The latest restart decision and the counters it carried.
	LastRestart   time.Time `json:"last_restart,omitzero"`
	Attempt       int       `json:"attempt,omitempty"`
	FrameStart    time.Time `json:"frame_start,omitzero"`
	FrameRestarts int       `json:"frame_restarts,omitempty"`
	BackoffStep   int       `json:"backoff_step,omitempty"`
	// GaveUp: a gave-up decision came after the latest restart decision.
	GaveUp bool `json:"gave_up,omitempty"`
	// StartedAt is the time of the latest start.
	StartedAt time.Time `json:"started_at,omitzero"`
	// Ours: a restart decision of ours since the latest start, so a kill or
	// stop before RestartDone is our restart's own.
	Ours bool `json:"ours,omitempty"`
	// RestartDone is when our latest restart finished or failed.
	RestartDone time.Time `json:"restart_done,omitzero"`
	// UserStopped: a kill or stop after the latest start that no restart of
	// ours explains.
	UserStopped bool `json:"user_stopped,omitempty"`
	// Died: a die after the latest start, at DiedAt.
	Died   bool      `json:"died,omitempty"`
	DiedAt time.Time `json:"died_at,omitzero"`
	// DryRunCounts: the restart counters come from monitor-only decisions,
	// which must not hold back real healing once the mode is off.
	DryRunCounts bool `json:"dry_run_counts,omitempty"`
	// HealthySince is when the container last turned healthy, zero unless it
	// is healthy now; LongestHealthy is the longest completed healthy
	// stretch since the latest restart decision.
	HealthySince   time.Time     `json:"healthy_since,omitzero"`
	LongestHealthy time.Duration `json:"longest_healthy,omitempty"`
	// Failures counts restarts that failed since the container last started;
	// LastError is the latest one's error.
	Failures  int    `json:"failures,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// LeftAlone is the reason told, once, for leaving the container to its
	// owner (Swarm, a one-off).
	LeftAlone string `json:"left_alone,omitempty"`

	// Paused: a person paused healing of the container (healer pause), until
	// PausedUntil, or until resumed when that is zero.
	Paused      bool      `json:"paused,omitempty"`
	PausedUntil time.Time `json:"paused_until,omitzero"`

	// InFlight (runtime): a restart of ours is claimed and not finished.
	InFlight bool `json:"-"`
	// Pending (runtime): the claimed restart has not been sent yet, so a
	// kill or stop now is not ours.
	Pending bool `json:"-"`
	// OwedParent (runtime): a restart owed to the network parent so named,
	// skipped for the budget and looked at again at its RetryAt.
	OwedParent string `json:"-"`
}

// Stored says whether the healer's history keeps events of kind k: those
// that Fold reads, so skips never crowd out what counts.
func Stored(k events.Kind) bool {
	switch k {
	case events.RestartRequested, events.GaveUp, events.RestartSucceeded, events.RestartFailed, events.Stopped,
		events.ControlPaused, events.ControlResumed,
		events.DockerStart, events.DockerKill, events.DockerStop,
		events.DockerHealthy, events.DockerUnhealthy, events.DockerDie:
		return true
	}
	return false
}

// FoldAll folds a stored history, oldest first, into a start-up State.
func FoldAll(history []events.Event) State {
	var s State
	for i := range history {
		s = Fold(s, history[i])
	}
	if n := len(history); n > 0 {
		s = s.Settled(history[n-1].Time)
	}
	return s
}

// Settled is the state as a new healer takes it over, its last event at
// last: nothing of an earlier healer is in flight, so a restart it claimed
// and never finished ends there, and no stop after it passes for ours.
func (s State) Settled(last time.Time) State {
	s.InFlight, s.Pending, s.OwedParent = false, false, ""
	if s.Ours && s.RestartDone.IsZero() {
		s.RestartDone = last
	}
	return s
}

// Fold is the container's state after event e.
func Fold(s State, e events.Event) State {
	switch e.Kind() {
	case events.RestartRequested:
		s.LastRestart, s.Attempt, s.FrameRestarts, s.BackoffStep = e.Time, e.Data.Attempt, e.Data.FrameRestarts, e.Data.BackoffStep
		s.FrameStart = e.Time
		if e.Data.FrameStart != nil {
			s.FrameStart = *e.Data.FrameStart
		}
		s.GaveUp, s.LongestHealthy, s.HealthySince = false, 0, time.Time{}
		s.DryRunCounts = e.Data.DryRun
		if e.Data.Action == config.ActionNotify {
			// Counted as if restarted, so the budget is what it would be;
			// nothing was sent, so no stop or kill that follows is ours.
			break
		}
		s.Ours, s.RestartDone = true, time.Time{}
	case events.ControlPaused:
		s.Paused, s.PausedUntil = true, time.Time{}
		if e.Data.Until != nil {
			s.PausedUntil = *e.Data.Until
		}
	case events.ControlResumed:
		s.Paused, s.PausedUntil = false, time.Time{}
	case events.Stopped:
		// Stopped on purpose by action=stop: like a user's stop, nothing
		// heals it until it is started again.
		s.RestartDone, s.Failures, s.LastError, s.UserStopped = e.Time, 0, "", true
	case events.GaveUp:
		s.GaveUp = true
	case events.RestartSucceeded:
		s.RestartDone, s.Failures, s.LastError = e.Time, 0, ""
	case events.RestartFailed:
		s.RestartDone, s.LastError = e.Time, e.Data.Error
		s.Failures++
	case events.RestartSkipped:
		switch {
		case e.Data.Reason == ReasonSwarm || e.Data.Reason == ReasonOneOff:
			s.LeftAlone = e.Data.Reason
		case strings.HasPrefix(e.Data.Reason, ReasonDropped):
			// Our claim ended unsent: a stop or kill from now on is not ours.
			s.Ours, s.RestartDone = false, e.Time
		}
	case events.DockerStart:
		s.StartedAt, s.UserStopped, s.Ours, s.Died = e.Time, false, false, false
		s.HealthySince, s.Failures, s.LastError = time.Time{}, 0, ""
	case events.DockerStop:
		if !s.ours(e.Time) {
			s.UserStopped = true
		}
	case events.DockerKill:
		if stops(e.Data.Signal) && !s.ours(e.Time) {
			s.UserStopped = true
		}
	case events.DockerHealthy:
		if s.HealthySince.IsZero() {
			s.HealthySince = e.Time
		}
	case events.DockerUnhealthy, events.DockerDie:
		if !s.HealthySince.IsZero() {
			s.LongestHealthy = max(s.LongestHealthy, e.Time.Sub(s.HealthySince))
			s.HealthySince = time.Time{}
		}
		if e.Kind() == events.DockerDie {
			s.Died, s.DiedAt = true, e.Time
		}
	}
	return s
}

// ours says whether a kill or stop at t is our restart's: one was sent
// since the latest start and had not finished before t.
func (s State) ours(t time.Time) bool {
	return s.Ours && !s.Pending && (s.RestartDone.IsZero() || !t.After(s.RestartDone))
}

// PausedAt says whether a pause for maintenance holds at now.
func (s State) PausedAt(now time.Time) bool {
	return s.Paused && (s.PausedUntil.IsZero() || now.Before(s.PausedUntil))
}

// stops says whether a kill signal ends the container, as docker stop,
// docker kill and compose down send; others (HUP, USR1) ask it to reload.
func stops(signal string) bool {
	switch strings.TrimPrefix(strings.ToUpper(signal), "SIG") {
	case "", "9", "15", "2", "3", "KILL", "TERM", "INT", "QUIT":
		return true
	}
	return false
}

// healthyFor is the longest healthy stretch since the last restart,
// counting one that is still going on at now.
func (s State) healthyFor(now time.Time) time.Duration {
	d := s.LongestHealthy
	if !s.HealthySince.IsZero() {
		d = max(d, now.Sub(s.HealthySince))
	}
	return d
}

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
	if o.Labels[swarmTaskLabel] != "" {
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
	case isTrue(o.Labels[oneOffLabel]):
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

// ParentRecreatedReason is the reason of a dependent's recreate.
func ParentRecreatedReason(parent string) string {
	return "its network parent " + parent + " was recreated"
}

// diedWith says whether the container's latest die came within
// diedWithWindow after its parent's die at parentDied (or just before it:
// the two are stamped by different goroutines of the daemon).
func (s State) diedWith(parentDied time.Time) bool {
	if !s.Died || s.DiedAt.IsZero() || parentDied.IsZero() {
		return false
	}
	d := s.DiedAt.Sub(parentDied)
	return d >= -time.Second && d <= diedWithWindow
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

// limit applies the rate limits to a restart that an observation calls for.
func limit(s State, p config.Policy, now time.Time, reason string) Decision {
	d := Decision{Verdict: Restart, Reason: reason, Attempt: 1, FrameStart: now, FrameRestarts: 1, BackoffStep: 1}
	if !s.StartedAt.IsZero() && now.Before(s.StartedAt.Add(p.StartGrace)) {
		return Decision{Verdict: Skip, Reason: ReasonStartGrace, RetryAt: s.StartedAt.Add(p.StartGrace)}
	}
	if s.LastRestart.IsZero() {
		return d
	}
	healthy := s.healthyFor(now)
	// Healthy for a whole frame: a fresh start for give-up and attempts.
	if healthy < p.FrameSize {
		if s.GaveUp {
			return Decision{Verdict: Skip, Reason: ReasonGivenUp}
		}
		d.Attempt = s.Attempt + 1
		if p.MaxChecksToGiveUp > 0 && s.Attempt >= p.MaxChecksToGiveUp {
			return Decision{Verdict: GiveUp, Reason: ReasonGiveUp, Attempt: s.Attempt}
		}
	}
	if healthy < p.BackoffReset {
		d.BackoffStep = s.BackoffStep + 1
	}
	if next := s.LastRestart.Add(p.SecondsBetweenRestarts); now.Before(next) {
		return Decision{Verdict: Skip, Reason: ReasonBetween, RetryAt: next}
	}
	if p.Backoff == config.BackoffExponential {
		if next := s.LastRestart.Add(backoffWait(p, s.BackoffStep)); now.Before(next) {
			return Decision{Verdict: Skip, Reason: ReasonBackoff, RetryAt: next}
		}
		return d
	}
	if s.FrameRestarts >= p.MaxRestartsInFrame {
		// The frame is used up: wait, then a new frame begins.
		if next := s.LastRestart.Add(p.SecondsBetweenNextFrame); now.Before(next) {
			return Decision{Verdict: Skip, Reason: ReasonFrameLimit, RetryAt: next}
		}
		return d
	}
	if now.Before(s.FrameStart.Add(p.FrameSize)) {
		d.FrameStart, d.FrameRestarts = s.FrameStart, s.FrameRestarts+1
	}
	return d
}

// backoffWait is the wait after the step-th restart: initial, doubling,
// capped at max.
func backoffWait(p config.Policy, step int) time.Duration {
	w := p.BackoffInitial
	for i := 1; i < step && w < p.BackoffMax; i++ {
		w *= 2
	}
	return min(w, p.BackoffMax)
}
