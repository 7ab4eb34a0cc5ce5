package heal

import (
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

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

	// Claimed holds, while a restart decision of ours is not done, the
	// counters as they were before it: a restart dropped unsent (a user's
	// stop or a pause came first) puts them back, as it spent nothing.
	Claimed Counters `json:"claimed,omitzero"`

	// InFlight (runtime): a restart of ours is claimed and not finished.
	InFlight bool `json:"-"`
	// Pending (runtime): the claimed restart has not been sent yet, so a
	// kill or stop now is not ours.
	Pending bool `json:"-"`
	// OwedParent (runtime): a restart owed to the network parent so named,
	// skipped for the budget and looked at again at its RetryAt.
	OwedParent string `json:"-"`
}

// Counters are what a restart decision counts, as they were before one.
type Counters struct {
	// Held: the counters below are a claim's; false, there is no claim.
	Held           bool          `json:"held,omitempty"`
	LastRestart    time.Time     `json:"last_restart,omitzero"`
	Attempt        int           `json:"attempt,omitempty"`
	FrameStart     time.Time     `json:"frame_start,omitzero"`
	FrameRestarts  int           `json:"frame_restarts,omitempty"`
	BackoffStep    int           `json:"backoff_step,omitempty"`
	GaveUp         bool          `json:"gave_up,omitempty"`
	DryRunCounts   bool          `json:"dry_run_counts,omitempty"`
	HealthySince   time.Time     `json:"healthy_since,omitzero"`
	LongestHealthy time.Duration `json:"longest_healthy,omitempty"`
	// Stopped: a stop or kill since the claim (and the latest start) that
	// a fold took for our restart's; a drop shows nothing was sent, so it
	// was a user's. Live, the claim is Pending and it is a user's at once.
	Stopped bool `json:"stopped,omitempty"`
}

// counters are s's restart counters, held for a claim.
func (s State) counters() Counters {
	return Counters{Held: true, LastRestart: s.LastRestart, Attempt: s.Attempt, FrameStart: s.FrameStart, FrameRestarts: s.FrameRestarts,
		BackoffStep: s.BackoffStep, GaveUp: s.GaveUp, DryRunCounts: s.DryRunCounts, HealthySince: s.HealthySince, LongestHealthy: s.LongestHealthy}
}

// unclaimed is s with the counters held by its claim put back.
func (s State) unclaimed() State {
	c := s.Claimed
	if !c.Held {
		return s
	}
	s.LastRestart, s.Attempt, s.FrameStart, s.FrameRestarts, s.BackoffStep = c.LastRestart, c.Attempt, c.FrameStart, c.FrameRestarts, c.BackoffStep
	s.GaveUp, s.DryRunCounts, s.HealthySince, s.LongestHealthy = c.GaveUp, c.DryRunCounts, c.HealthySince, c.LongestHealthy
	if c.Stopped {
		s.UserStopped = true
	}
	s.Claimed = Counters{}
	return s
}

// Stored says whether the healer's history keeps e: the events that Fold
// reads, so that skips never crowd out what counts; of the skips, only a
// dropped claim, which gives its counters back.
func Stored(e events.Event) bool {
	switch e.Kind() {
	case events.RestartRequested, events.GaveUp, events.RestartSucceeded, events.RestartFailed, events.Stopped,
		events.ControlPaused, events.ControlResumed,
		events.DockerStart, events.DockerKill, events.DockerStop,
		events.DockerHealthy, events.DockerUnhealthy, events.DockerDie:
		return true
	case events.RestartSkipped:
		return strings.HasPrefix(e.Data.Reason, ReasonDropped)
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
	// A claim of the earlier healer's is taken as spent: its restart may
	// have been sent.
	s.InFlight, s.Pending, s.OwedParent, s.Claimed = false, false, "", Counters{}
	if s.Ours && s.RestartDone.IsZero() {
		s.RestartDone = last
	}
	return s
}

// Fold is the container's state after event e.
func Fold(s State, e events.Event) State {
	if s.Claimed.Held {
		// The claim's counters are what they would be without its
		// decision: the container's health and stops go on meanwhile.
		s.Claimed = s.Claimed.follow(s, e)
	}
	switch e.Kind() {
	case events.RestartRequested:
		claimed := s.counters()
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
			s.Claimed = Counters{}
			break
		}
		s.Ours, s.RestartDone, s.Claimed = true, time.Time{}, claimed
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
		s.Claimed = Counters{}
	case events.GaveUp:
		s.GaveUp = true
	case events.RestartSucceeded:
		s.RestartDone, s.Failures, s.LastError = e.Time, 0, ""
		s.Claimed = Counters{}
	case events.RestartFailed:
		s.RestartDone, s.LastError = e.Time, e.Data.Error
		s.Failures++
		s.Claimed = Counters{}
	case events.RestartSkipped:
		switch {
		case e.Data.Reason == ReasonSwarm || e.Data.Reason == ReasonOneOff:
			s.LeftAlone = e.Data.Reason
		case strings.HasPrefix(e.Data.Reason, ReasonDropped):
			// Our claim ended unsent: a stop or kill from now on is not
			// ours, and the restart that never happened spent nothing.
			s = s.unclaimed()
			s.Ours, s.RestartDone = false, e.Time
			if e.Data.Reason == ReasonDropped+": "+ReasonUserStopped {
				// Seen live while the claim waited (a stop then is not
				// ours); folded from the history, the stop came before this
				// and passed for our restart's own.
				s.UserStopped = true
			}
		}
	case events.DockerStart:
		s.StartedAt, s.UserStopped, s.Ours, s.Died = e.Time, false, false, false
		s.Failures, s.LastError = 0, ""
	case events.DockerStop:
		if !s.ours(e.Time) {
			s.UserStopped = true
		}
	case events.DockerKill:
		if stops(e.Data.Signal) && !s.ours(e.Time) {
			s.UserStopped = true
		}
	case events.DockerDie:
		s.Died, s.DiedAt = true, e.Time
	}
	s.HealthySince, s.LongestHealthy = followHealth(s.HealthySince, s.LongestHealthy, e)
	return s
}

// followHealth is since (when the container turned healthy, zero unless it
// is) and longest (the longest healthy stretch ended) after event e.
func followHealth(since time.Time, longest time.Duration, e events.Event) (time.Time, time.Duration) {
	switch e.Kind() {
	case events.DockerStart:
		since = time.Time{}
	case events.DockerHealthy:
		if since.IsZero() {
			since = e.Time
		}
	case events.DockerUnhealthy, events.DockerDie:
		if !since.IsZero() {
			longest = max(longest, e.Time.Sub(since))
			since = time.Time{}
		}
	}
	return since, longest
}

// follow is c after event e, folded into s: what e would have done to the
// counters had the claim's decision not been made.
func (c Counters) follow(s State, e events.Event) Counters {
	c.HealthySince, c.LongestHealthy = followHealth(c.HealthySince, c.LongestHealthy, e)
	switch e.Kind() {
	case events.DockerStart:
		c.Stopped = false
	case events.DockerStop:
		c.Stopped = c.Stopped || s.ours(e.Time)
	case events.DockerKill:
		c.Stopped = c.Stopped || stops(e.Data.Signal) && s.ours(e.Time)
	}
	return c
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
