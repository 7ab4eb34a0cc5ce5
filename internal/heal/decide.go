package heal

import (
	"fmt"
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
	// Restart the container.
	Restart
	// Skip a restart that the observation would call for, saying why.
	Skip
	// GiveUp: stop healing the container until it recovers or is recreated.
	GiveUp
)

func (v Verdict) String() string {
	return [...]string{"ignore", "restart", "skip", "give_up"}[v]
}

// Decision is a verdict, its reason, and the policy's counters for a
// restart (or when to look again for a skip).
type Decision struct {
	Verdict Verdict
	Reason  string
	// RetryAt, for a skip, is when the restart may be allowed.
	RetryAt       time.Time
	Attempt       int
	FrameStart    time.Time
	FrameRestarts int
	BackoffStep   int
}

// Reasons, stable strings that subscribers and the notifier match on.
const (
	ReasonUnhealthy    = "health_status: unhealthy"
	ReasonReconciled   = "unhealthy when listed"
	ReasonExited       = "exited"
	ReasonInFlight     = "a restart of this container is already running"
	ReasonReplayed     = "event replayed after a reconnect; the container's current state was reconciled instead"
	ReasonGivenUp      = "the healer gave up on this container"
	ReasonGiveUp       = "restarted max_checks_to_give_up times without staying healthy"
	ReasonStartGrace   = "within start_grace of the container's start"
	ReasonBetween      = "within seconds_between_restarts of the last restart"
	ReasonFrameLimit   = events.ReasonFrameLimit
	ReasonBackoff      = "exponential backoff"
	ReasonUserStopped  = "stopped by a user or API call"
	ReasonExitZero     = "exited with code 0"
	ReasonRunningAgain = "running again"
	ReasonOwnPolicy    = "its own restart policy restarts it"
	ReasonDependent    = "network_mode container: of a restarted container"
)

// Summary is what a container's history says, folded from its events.
type Summary struct {
	// Last is the latest restart decision, nil if none.
	Last *events.Event
	// GaveUp is set when a gave-up decision came after the last restart.
	GaveUp bool
	// StartedAt is the time of the latest start.
	StartedAt time.Time
	// UserStopped: a kill or stop after the latest start that no restart
	// decision of ours explains.
	UserStopped bool
	// HealthySince is when the container last turned healthy, zero unless
	// it is healthy now.
	HealthySince time.Time
	// LongestHealthy is the longest completed healthy stretch since Last.
	LongestHealthy time.Duration
}

// InHistory says whether the policy reads events of kind k: only those are
// kept in a container's history, so skips and outcomes never crowd out what
// counts.
func InHistory(k events.Kind) bool {
	switch k {
	case events.RestartRequested, events.GaveUp, events.DockerStart, events.DockerKill, events.DockerStop,
		events.DockerHealthy, events.DockerUnhealthy, events.DockerDie:
		return true
	}
	return false
}

// Summarize folds a container's history, oldest first.
func Summarize(history []events.Event) Summary {
	var s Summary
	ours := false // a restart decision since the latest start
	for i := range history {
		e := &history[i]
		switch e.Kind() {
		case events.RestartRequested:
			s.Last, s.GaveUp, s.LongestHealthy, ours = e, false, 0, true
			s.HealthySince = time.Time{}
		case events.GaveUp:
			s.GaveUp = true
		case events.DockerStart:
			s.StartedAt, s.UserStopped, ours = e.Time, false, false
			s.HealthySince = time.Time{}
		case events.DockerStop:
			if !ours {
				s.UserStopped = true
			}
		case events.DockerKill:
			if !ours && stops(e.Data.Signal) {
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
		}
	}
	return s
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
func (s Summary) healthyFor(now time.Time) time.Duration {
	d := s.LongestHealthy
	if !s.HealthySince.IsZero() {
		d = max(d, now.Sub(s.HealthySince))
	}
	return d
}

// Container is what the healer knows of a container beyond its history:
// whether a restart of it is running now.
type Container struct {
	InFlight bool
}

// Decide is the healer's whole judgement of one observation about a
// selected container: a pure function of its history (oldest first, not
// including o), the observation, its policy and the time.
func Decide(history []events.Event, c Container, o events.Observed, p config.Policy, now time.Time) Decision {
	s := Summarize(history)
	var reason string
	switch o.Kind {
	case events.DockerUnhealthy:
		switch {
		case o.Replayed:
			return Decision{Verdict: Skip, Reason: ReasonReplayed}
		case s.UserStopped:
			// A probe that fails while the user's stop runs is no reason
			// to fight the stop.
			return Decision{Verdict: Skip, Reason: ReasonUserStopped}
		case o.Reconciled:
			reason = ReasonReconciled
		default:
			reason = ReasonUnhealthy
		}
	case events.DockerDie:
		if !p.HealExited || c.InFlight {
			return Decision{Verdict: Ignore}
		}
		switch {
		case o.Replayed:
			return Decision{Verdict: Skip, Reason: ReasonReplayed}
		case s.UserStopped:
			return Decision{Verdict: Skip, Reason: ReasonUserStopped}
		case o.ExitCode != nil && *o.ExitCode == 0 && !p.HealExitZero:
			return Decision{Verdict: Skip, Reason: ReasonExitZero}
		}
		reason = ReasonExited
		if o.ExitCode != nil {
			reason = fmt.Sprintf("exited with code %d", *o.ExitCode)
		}
	default:
		return Decision{Verdict: Ignore}
	}
	if c.InFlight {
		return Decision{Verdict: Skip, Reason: ReasonInFlight}
	}
	return limit(s, p, now, reason)
}

// limit applies the rate limits to a restart that an observation calls for.
func limit(s Summary, p config.Policy, now time.Time, reason string) Decision {
	d := Decision{Verdict: Restart, Reason: reason, Attempt: 1, FrameStart: now, FrameRestarts: 1, BackoffStep: 1}
	if !s.StartedAt.IsZero() && now.Before(s.StartedAt.Add(p.StartGrace)) {
		return Decision{Verdict: Skip, Reason: ReasonStartGrace, RetryAt: s.StartedAt.Add(p.StartGrace)}
	}
	last := s.Last
	if last == nil {
		return d
	}
	healthy := s.healthyFor(now)
	// Healthy for a whole frame: a fresh start for give-up and attempts.
	if healthy < p.FrameSize {
		if s.GaveUp {
			return Decision{Verdict: Skip, Reason: ReasonGivenUp}
		}
		d.Attempt = last.Data.Attempt + 1
		if p.MaxChecksToGiveUp > 0 && last.Data.Attempt >= p.MaxChecksToGiveUp {
			return Decision{Verdict: GiveUp, Reason: ReasonGiveUp, Attempt: last.Data.Attempt}
		}
	}
	if healthy < p.BackoffReset {
		d.BackoffStep = last.Data.BackoffStep + 1
	}
	if next := last.Time.Add(p.SecondsBetweenRestarts); now.Before(next) {
		return Decision{Verdict: Skip, Reason: ReasonBetween, RetryAt: next}
	}
	if p.Backoff == config.BackoffExponential {
		if next := last.Time.Add(backoffWait(p, last.Data.BackoffStep)); now.Before(next) {
			return Decision{Verdict: Skip, Reason: ReasonBackoff, RetryAt: next}
		}
		return d
	}
	frameStart := last.Time
	if last.Data.FrameStart != nil {
		frameStart = *last.Data.FrameStart
	}
	if last.Data.FrameRestarts >= p.MaxRestartsInFrame {
		// The frame is used up: wait, then a new frame begins.
		if next := last.Time.Add(p.SecondsBetweenNextFrame); now.Before(next) {
			return Decision{Verdict: Skip, Reason: ReasonFrameLimit, RetryAt: next}
		}
		return d
	}
	if now.Before(frameStart.Add(p.FrameSize)) {
		d.FrameStart, d.FrameRestarts = frameStart, last.Data.FrameRestarts+1
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
