package heal

import (
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
)

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
		if p.GiveUpAfterRestarts > 0 && s.Attempt >= p.GiveUpAfterRestarts {
			return Decision{Verdict: GiveUp, Reason: ReasonBudgetSpent, Attempt: s.Attempt}
		}
	}
	if healthy < p.BackoffReset {
		d.BackoffStep = s.BackoffStep + 1
	}
	if next := s.LastRestart.Add(p.BetweenRestarts); now.Before(next) {
		return Decision{Verdict: Skip, Reason: ReasonBetweenRestarts, RetryAt: next}
	}
	if p.Backoff == config.BackoffExponential {
		if next := s.LastRestart.Add(backoffWait(p, s.BackoffStep)); now.Before(next) {
			return Decision{Verdict: Skip, Reason: ReasonBackoff, RetryAt: next}
		}
		return d
	}
	if s.FrameRestarts >= p.MaxRestartsInFrame {
		// The frame is used up: wait, then a new frame begins.
		if next := s.LastRestart.Add(p.BetweenFrames); now.Before(next) {
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
