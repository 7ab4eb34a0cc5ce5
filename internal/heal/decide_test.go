package heal

import (
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func policy() config.Policy {
	return config.Policy{
		StopTimeout: 10 * time.Second, SecondsBetweenRestarts: 15 * time.Second, FrameSize: 300 * time.Second,
		MaxRestartsInFrame: 3, SecondsBetweenNextFrame: 600 * time.Second, MaxChecksToGiveUp: 50,
		Backoff: config.BackoffFrames, BackoffInitial: 10 * time.Second, BackoffMax: 300 * time.Second, BackoffReset: 600 * time.Second,
		HealExited: true, RestartDependents: true, MaxHistoricEntries: 50,
	}
}

func with(f func(*config.Policy)) config.Policy {
	p := policy()
	f(&p)
	return p
}

func ev(k events.Kind, s int) events.Event {
	return events.New(k, string(k), at(s), "web", events.Data{Host: "h", ContainerID: "c1"})
}

// restarted is a restart decision at second s with the counters it carried.
func restarted(s, attempt, frameStart, frameRestarts, step int) events.Event {
	e := ev(events.RestartRequested, s)
	fs := at(frameStart)
	e.Data.Attempt, e.Data.FrameStart, e.Data.FrameRestarts, e.Data.BackoffStep = attempt, &fs, frameRestarts, step
	return e
}

func hist(es ...events.Event) []events.Event { return es }

func unhealthy() events.Observed {
	return events.Observed{Kind: events.DockerUnhealthy, ContainerID: "c1"}
}

func died(code int) events.Observed {
	return events.Observed{Kind: events.DockerDie, ContainerID: "c1", ExitCode: &code}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		history  []events.Event
		c        Container
		obs      events.Observed
		p        config.Policy
		now      int
		want     Verdict
		reason   string
		retryAt  int // seconds; 0: none
		attempt  int
		frameRes int
	}{
		{name: "first unhealthy restarts", obs: unhealthy(), p: policy(), now: 0, want: Restart, reason: ReasonUnhealthy, attempt: 1, frameRes: 1},
		{name: "listed unhealthy restarts", obs: events.Observed{Kind: events.DockerUnhealthy, Reconciled: true}, p: policy(), want: Restart, reason: ReasonReconciled, attempt: 1, frameRes: 1},
		{name: "replayed event never restarts", obs: events.Observed{Kind: events.DockerUnhealthy, Replayed: true}, p: policy(), want: Skip, reason: ReasonReplayed},
		{name: "restart running", c: Container{InFlight: true}, obs: unhealthy(), p: policy(), want: Skip, reason: ReasonInFlight},
		{name: "healthy is nothing to decide", obs: events.Observed{Kind: events.DockerHealthy}, p: policy(), want: Ignore},
		{name: "kill is nothing to decide", obs: events.Observed{Kind: events.DockerKill}, p: policy(), want: Ignore},

		{name: "too soon after the last restart", history: hist(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 10, want: Skip, reason: ReasonBetween, retryAt: 15},
		{name: "second restart in the frame", history: hist(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 20, want: Restart, attempt: 2, frameRes: 2},
		{name: "third restart fills the frame", history: hist(restarted(0, 1, 0, 1, 1), restarted(20, 2, 0, 2, 2)), obs: unhealthy(), p: policy(), now: 40, want: Restart, attempt: 3, frameRes: 3},
		{name: "frame used up", history: hist(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 60, want: Skip, reason: ReasonFrameLimit, retryAt: 640},
		{name: "frame used up, still waiting after the frame ends", history: hist(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 400, want: Skip, reason: ReasonFrameLimit, retryAt: 640},
		{name: "next frame after the wait", history: hist(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 640, want: Restart, attempt: 4, frameRes: 1},
		{name: "frame over without being used up", history: hist(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 301, want: Restart, attempt: 2, frameRes: 1},

		{name: "give up after max checks", history: hist(restarted(0, 50, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 1000, want: GiveUp, reason: ReasonGiveUp},
		{name: "given up stays given up", history: hist(restarted(0, 50, 0, 1, 1), ev(events.GaveUp, 1000)), obs: unhealthy(), p: policy(), now: 2000, want: Skip, reason: ReasonGivenUp},
		{name: "healthy for a whole frame resumes healing", history: hist(restarted(0, 50, 0, 1, 1), ev(events.GaveUp, 1000), ev(events.DockerHealthy, 1100)), obs: unhealthy(), p: policy(), now: 1400, want: Restart, attempt: 1},
		{name: "healthy for less than a frame does not", history: hist(restarted(0, 49, 0, 1, 1), ev(events.DockerHealthy, 100)), obs: unhealthy(), p: policy(), now: 200, want: Restart, attempt: 50},
		{name: "give-up off", history: hist(restarted(0, 5000, 0, 1, 1)), obs: unhealthy(), p: with(func(p *config.Policy) { p.MaxChecksToGiveUp = 0 }), now: 1000, want: Restart, attempt: 5001},

		{name: "start grace", history: hist(ev(events.DockerStart, 100)), obs: unhealthy(), p: with(func(p *config.Policy) { p.StartGrace = 30 * time.Second }), now: 110, want: Skip, reason: ReasonStartGrace, retryAt: 130},
		{name: "after start grace", history: hist(ev(events.DockerStart, 100)), obs: unhealthy(), p: with(func(p *config.Policy) { p.StartGrace = 30 * time.Second }), now: 131, want: Restart, attempt: 1},

		{name: "exponential: first wait is initial", history: hist(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: with(func(p *config.Policy) { p.Backoff = config.BackoffExponential; p.SecondsBetweenRestarts = 0 }), now: 5, want: Skip, reason: ReasonBackoff, retryAt: 10},
		{name: "exponential: doubles", history: hist(restarted(100, 3, 0, 1, 3)), obs: unhealthy(), p: with(func(p *config.Policy) { p.Backoff = config.BackoffExponential; p.SecondsBetweenRestarts = 0 }), now: 130, want: Skip, reason: ReasonBackoff, retryAt: 140},
		{name: "exponential: capped", history: hist(restarted(0, 20, 0, 1, 20)), obs: unhealthy(), p: with(func(p *config.Policy) { p.Backoff = config.BackoffExponential; p.SecondsBetweenRestarts = 0 }), now: 299, want: Skip, reason: ReasonBackoff, retryAt: 300},
		{name: "exponential: ignores frames", history: hist(restarted(0, 3, 0, 3, 1)), obs: unhealthy(), p: with(func(p *config.Policy) { p.Backoff = config.BackoffExponential; p.SecondsBetweenRestarts = 0 }), now: 10, want: Restart, attempt: 4},

		{name: "crash restarts", obs: died(3), p: policy(), want: Restart, reason: "exited with code 3", attempt: 1},
		{name: "exit 0 is left alone", obs: died(0), p: policy(), want: Skip, reason: ReasonExitZero},
		{name: "exit 0 with heal_exit_zero", obs: died(0), p: with(func(p *config.Policy) { p.HealExitZero = true }), want: Restart, attempt: 1},
		{name: "heal_exited off", obs: died(3), p: with(func(p *config.Policy) { p.HealExited = false }), want: Ignore},
		{name: "docker stop is never undone", history: hist(ev(events.DockerStart, 0), ev(events.DockerKill, 10)), obs: died(143), p: policy(), now: 11, want: Skip, reason: ReasonUserStopped},
		{name: "docker stop of an unhealthy container", history: hist(ev(events.DockerStart, 0), ev(events.DockerUnhealthy, 5), restarted(5, 3, 0, 3, 3), ev(events.DockerKill, 5), ev(events.DockerStart, 6), ev(events.DockerUnhealthy, 8), ev(events.DockerStop, 10)), obs: died(137), p: policy(), now: 11, want: Skip, reason: ReasonUserStopped},
		{name: "our own restart's kill is not a user stop", history: hist(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5)), obs: died(3), p: policy(), now: 30, want: Restart, attempt: 2},
		{name: "unhealthy while the user's stop runs", history: hist(ev(events.DockerStart, 0), ev(events.DockerKill, 10)), obs: unhealthy(), p: policy(), now: 10, want: Skip, reason: ReasonUserStopped},
		{name: "a reload signal is no stop", history: hist(ev(events.DockerStart, 0), func() events.Event { e := ev(events.DockerKill, 10); e.Data.Signal = "1"; return e }()), obs: unhealthy(), p: policy(), now: 20, want: Restart, attempt: 1},
		{name: "unhealthy after our own restart's kill", history: hist(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5)), obs: unhealthy(), p: policy(), now: 30, want: Restart, attempt: 2},
		{name: "die during our restart", c: Container{InFlight: true}, obs: died(143), p: policy(), want: Ignore},
		{name: "replayed die", obs: events.Observed{Kind: events.DockerDie, Replayed: true}, p: policy(), want: Skip, reason: ReasonReplayed},
		{name: "crash loop obeys the frame", history: hist(restarted(40, 3, 0, 3, 3)), obs: died(1), p: policy(), now: 60, want: Skip, reason: ReasonFrameLimit, retryAt: 640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Decide(tt.history, tt.c, tt.obs, tt.p, at(tt.now))
			if got.Verdict != tt.want {
				t.Fatalf("verdict %s (%s), want %s", got.Verdict, got.Reason, tt.want)
			}
			if tt.reason != "" && got.Reason != tt.reason {
				t.Errorf("reason %q, want %q", got.Reason, tt.reason)
			}
			if tt.retryAt != 0 && !got.RetryAt.Equal(at(tt.retryAt)) {
				t.Errorf("retry at %s, want %s", got.RetryAt, at(tt.retryAt))
			}
			if tt.attempt != 0 && got.Attempt != tt.attempt {
				t.Errorf("attempt %d, want %d", got.Attempt, tt.attempt)
			}
			if tt.frameRes != 0 && got.FrameRestarts != tt.frameRes {
				t.Errorf("frame restarts %d, want %d", got.FrameRestarts, tt.frameRes)
			}
		})
	}
}

// A crash loop under the default policy, decided event by event: exactly
// max_restarts_in_frame restarts, then nothing until the next frame.
func TestCrashLoopBudget(t *testing.T) {
	t.Parallel()
	p := policy()
	var history []events.Event
	restarts := 0
	for s := 0; s < 630; s++ {
		d := Decide(history, Container{}, unhealthy(), p, at(s))
		if d.Verdict == Restart {
			restarts++
			fs := d.FrameStart
			e := ev(events.RestartRequested, s)
			e.Data.Attempt, e.Data.FrameStart, e.Data.FrameRestarts, e.Data.BackoffStep = d.Attempt, &fs, d.FrameRestarts, d.BackoffStep
			history = append(history, e)
		}
	}
	if restarts != 3 {
		t.Errorf("%d restarts before seconds_between_next_frame ran out, want 3", restarts)
	}
	if d := Decide(history, Container{}, unhealthy(), p, at(30+600)); d.Verdict != Restart || d.FrameRestarts != 1 {
		t.Errorf("after seconds_between_next_frame: %+v, want a restart opening a new frame", d)
	}
}

// The daemon logs kill after signalling, so a fast exit can put the die
// before the kill: the stop is a user's all the same.
func TestKillAfterDieIsStillAUserStop(t *testing.T) {
	t.Parallel()
	h := hist(ev(events.DockerStart, 0), ev(events.DockerDie, 10), ev(events.DockerKill, 10), ev(events.DockerStop, 10))
	if d := Decide(h, Container{}, died(0), with(func(p *config.Policy) { p.HealExitZero = true }), at(11)); d.Verdict != Skip || d.Reason != ReasonUserStopped {
		t.Errorf("got %+v, want a skip: stopped by a user", d)
	}
}
