package heal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func policy() config.Policy {
	return config.Policy{
		StopTimeout: 10 * time.Second, BetweenRestarts: 15 * time.Second, FrameSize: 300 * time.Second,
		MaxRestartsInFrame: 3, BetweenFrames: 600 * time.Second, GiveUpAfterRestarts: 50,
		Backoff: config.BackoffFrames, BackoffInitial: 10 * time.Second, BackoffMax: 300 * time.Second, BackoffReset: 600 * time.Second,
		HealExited: true, RestartDependents: true, Recreate: true, MaxHistoricEntries: 50,
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

func evMS(k events.Kind, ms int) events.Event {
	return events.New(k, string(k), t0.Add(time.Duration(ms)*time.Millisecond), "web", events.Data{Host: "h", ContainerID: "c1"})
}

// restarted is a restart decision at second s with the counters it carried.
func restarted(s, attempt, frameStart, frameRestarts, step int) events.Event {
	e := ev(events.RestartRequested, s)
	fs := at(frameStart)
	e.Data.Attempt, e.Data.FrameStart, e.Data.FrameRestarts, e.Data.BackoffStep = attempt, &fs, frameRestarts, step
	return e
}

func failed(s int, err string) events.Event {
	e := ev(events.RestartFailed, s)
	e.Data.Error = err
	return e
}

func skippedEv(s int, reason string) events.Event {
	e := ev(events.RestartSkipped, s)
	e.Data.Reason = reason
	return e
}

func state(es ...events.Event) State { return FoldAll(es) }

func unhealthy() Observation {
	return Observation{Observed: events.Observed{Kind: events.DockerUnhealthy, ContainerID: "c1"}}
}

func labelled(o Observation, k, v string) Observation {
	o.Labels = map[string]string{k: v}
	return o
}

func died(code int, s int) Observation {
	return Observation{Observed: events.Observed{Kind: events.DockerDie, ContainerID: "c1", ExitCode: &code, DockerTime: at(s)}}
}

// exited is a look at a container found exited with code.
func exited(code int) Observation {
	return Observation{Observed: events.Observed{Kind: events.DockerDie, ContainerID: "c1"}, Purpose: FromLook, Look: events.Container{ID: "c1", ExitCode: code}}
}

func looked(c events.Container) Observation {
	return Observation{Observed: events.Observed{ContainerID: "c1"}, Purpose: FromLook, Look: c}
}

func restart(reason string, attempt, frameStart, frameRestarts, step int, now int) Decision {
	return Decision{Verdict: Restart, Reason: reason, Attempt: attempt, FrameStart: at(frameStart), FrameRestarts: frameRestarts, BackoffStep: step}
}

func skip(reason string) Decision { return Decision{Verdict: Skip, Reason: reason} }

func skipUntil(reason string, s int) Decision {
	return Decision{Verdict: Skip, Reason: reason, RetryAt: at(s)}
}

func act(a string) config.Policy { return with(func(p *config.Policy) { p.Action = a }) }

func as(d Decision, action string) Decision { d.Action = action; return d }

func notified(e events.Event) events.Event  { e.Data.Action = config.ActionNotify; return e }
func stoppedBy(e events.Event) events.Event { e.Data.Action = config.ActionStop; return e }

// paused is a pause at second s until second until (-1: no end).
func paused(s, until int) events.Event {
	e := ev(events.ControlPaused, s)
	if until >= 0 {
		u := at(until)
		e.Data.Until = &u
	}
	return e
}

func dry(e events.Event) events.Event {
	e.Data.Action, e.Data.DryRun = config.ActionNotify, true
	return e
}

func inFlight(s State) State { s.InFlight = true; return s }
func pending(s State) State  { s.InFlight, s.Pending = true, true; return s }

func TestDecide(t *testing.T) {
	t.Parallel()
	exp := with(func(p *config.Policy) { p.Backoff = config.BackoffExponential; p.BetweenRestarts = 0 })
	tests := []struct {
		name string
		s    State
		obs  Observation
		p    config.Policy
		now  int
		want Decision
	}{
		{name: "first unhealthy restarts", obs: unhealthy(), p: policy(), want: restart(ReasonUnhealthy, 1, 0, 1, 1, 0)},
		{name: "listed unhealthy restarts", obs: Observation{Observed: events.Observed{Kind: events.DockerUnhealthy, Reconciled: true}}, p: policy(), want: restart(ReasonReconciled, 1, 0, 1, 1, 0)},
		{name: "replayed event never restarts", obs: Observation{Observed: events.Observed{Kind: events.DockerUnhealthy, Replayed: true}}, p: policy(), want: skip(ReasonReplayed)},
		{name: "restart running", s: inFlight(State{}), obs: unhealthy(), p: policy(), want: skip(ReasonInFlight)},
		{name: "healthy is nothing to decide", obs: Observation{Observed: events.Observed{Kind: events.DockerHealthy}}, p: policy(), want: Decision{}},
		{name: "kill is nothing to decide", obs: Observation{Observed: events.Observed{Kind: events.DockerKill}}, p: policy(), want: Decision{}},

		{name: "too soon after the last restart", s: state(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 10, want: skipUntil(ReasonBetweenRestarts, 15)},
		{name: "second restart in the frame", s: state(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 20, want: restart(ReasonUnhealthy, 2, 0, 2, 2, 20)},
		{name: "third restart fills the frame", s: state(restarted(0, 1, 0, 1, 1), restarted(20, 2, 0, 2, 2)), obs: unhealthy(), p: policy(), now: 40, want: restart(ReasonUnhealthy, 3, 0, 3, 3, 40)},
		{name: "frame used up", s: state(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 60, want: skipUntil(ReasonFrameLimit, 640)},
		{name: "frame used up, still waiting after the frame ends", s: state(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 400, want: skipUntil(ReasonFrameLimit, 640)},
		{name: "next frame after the wait", s: state(restarted(40, 3, 0, 3, 3)), obs: unhealthy(), p: policy(), now: 640, want: restart(ReasonUnhealthy, 4, 640, 1, 4, 640)},
		{name: "frame over without being used up", s: state(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 301, want: restart(ReasonUnhealthy, 2, 301, 1, 2, 301)},

		{name: "give up after max checks", s: state(restarted(0, 50, 0, 1, 1)), obs: unhealthy(), p: policy(), now: 1000, want: Decision{Verdict: GiveUp, Reason: ReasonBudgetSpent, Attempt: 50}},
		{name: "given up stays given up", s: state(restarted(0, 50, 0, 1, 1), ev(events.GaveUp, 1000)), obs: unhealthy(), p: policy(), now: 2000, want: skip(ReasonGivenUp)},
		{name: "healthy for a whole frame resumes healing", s: state(restarted(0, 50, 0, 1, 1), ev(events.GaveUp, 1000), ev(events.DockerHealthy, 1100)), obs: unhealthy(), p: policy(), now: 1400, want: restart(ReasonUnhealthy, 1, 1400, 1, 2, 1400)},
		{name: "healthy for less than a frame does not", s: state(restarted(0, 49, 0, 1, 1), ev(events.DockerHealthy, 100)), obs: unhealthy(), p: policy(), now: 200, want: restart(ReasonUnhealthy, 50, 0, 2, 2, 200)},
		{name: "give-up off", s: state(restarted(0, 5000, 0, 1, 1)), obs: unhealthy(), p: with(func(p *config.Policy) { p.GiveUpAfterRestarts = 0 }), now: 1000, want: restart(ReasonUnhealthy, 5001, 1000, 1, 2, 1000)},

		{name: "start grace", s: state(ev(events.DockerStart, 100)), obs: unhealthy(), p: with(func(p *config.Policy) { p.StartGrace = 30 * time.Second }), now: 110, want: skipUntil(ReasonStartGrace, 130)},
		{name: "after start grace", s: state(ev(events.DockerStart, 100)), obs: unhealthy(), p: with(func(p *config.Policy) { p.StartGrace = 30 * time.Second }), now: 131, want: restart(ReasonUnhealthy, 1, 131, 1, 1, 131)},

		{name: "exponential: first wait is initial", s: state(restarted(0, 1, 0, 1, 1)), obs: unhealthy(), p: exp, now: 5, want: skipUntil(ReasonBackoff, 10)},
		{name: "exponential: doubles", s: state(restarted(100, 3, 0, 1, 3)), obs: unhealthy(), p: exp, now: 130, want: skipUntil(ReasonBackoff, 140)},
		{name: "exponential: capped", s: state(restarted(0, 20, 0, 1, 20)), obs: unhealthy(), p: exp, now: 299, want: skipUntil(ReasonBackoff, 300)},
		{name: "exponential: ignores frames", s: state(restarted(0, 3, 0, 3, 1)), obs: unhealthy(), p: exp, now: 10, want: restart(ReasonUnhealthy, 4, 10, 1, 2, 10)},

		// A death is decided when the stop's events are in, without a sleep.
		{name: "a die is looked at again shortly", s: state(ev(events.DockerStart, 0)), obs: died(3, 10), p: policy(), now: 10, want: Decision{Verdict: LookAgain, RetryAt: at(10).Add(exitSettle)}},
		{name: "crash restarts", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 10)), obs: exited(3), p: policy(), now: 10, want: restart("exited with code 3", 1, 10, 1, 1, 10)},
		{name: "exit 0 is left alone", obs: exited(0), p: policy(), want: skip(ReasonExitZero)},
		{name: "exit 0 with heal_exit_zero", obs: exited(0), p: with(func(p *config.Policy) { p.HealExitZero = true }), want: restart("exited with code 0", 1, 0, 1, 1, 0)},
		{name: "heal_exited off", obs: died(3, 0), p: with(func(p *config.Policy) { p.HealExited = false }), want: Decision{}},
		{name: "heal_exited off, looked", obs: exited(3), p: with(func(p *config.Policy) { p.HealExited = false }), want: Decision{}},
		{name: "running again when looked at", obs: func() Observation { o := exited(3); o.Look.Running = true; return o }(), p: policy(), want: skip(ReasonRunningAgain)},
		{name: "its own restart policy", obs: func() Observation { o := exited(3); o.Look.RestartsItself = true; return o }(), p: policy(), want: skip(ReasonOwnPolicy)},
		{name: "docker stop is never undone", s: state(ev(events.DockerStart, 0), ev(events.DockerKill, 10), ev(events.DockerDie, 10)), obs: exited(143), p: policy(), now: 11, want: skip(ReasonUserStopped)},
		{name: "docker stop of an unhealthy container", s: state(ev(events.DockerStart, 0), ev(events.DockerUnhealthy, 5), restarted(5, 3, 0, 3, 3), ev(events.DockerKill, 5), ev(events.DockerStart, 6), ev(events.DockerUnhealthy, 8), ev(events.DockerStop, 10)), obs: exited(137), p: policy(), now: 11, want: skip(ReasonUserStopped)},
		{name: "the die of our own restart", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5)), obs: died(143, 5), p: policy(), now: 5, want: Decision{}},
		{name: "a crash after our restart's kill", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5), ev(events.RestartSucceeded, 6), ev(events.DockerStart, 6), ev(events.DockerDie, 30)), obs: exited(3), p: policy(), now: 30, want: restart("exited with code 3", 2, 5, 2, 2, 30)},
		{name: "unhealthy while the user's stop runs", s: state(ev(events.DockerStart, 0), ev(events.DockerKill, 10)), obs: unhealthy(), p: policy(), now: 10, want: skip(ReasonUserStopped)},
		{name: "a reload signal is no stop", s: state(ev(events.DockerStart, 0), func() events.Event { e := ev(events.DockerKill, 10); e.Data.Signal = "1"; return e }()), obs: unhealthy(), p: policy(), now: 20, want: restart(ReasonUnhealthy, 1, 20, 1, 1, 20)},
		{name: "unhealthy after our own restart's kill", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5)), obs: unhealthy(), p: policy(), now: 30, want: restart(ReasonUnhealthy, 2, 5, 2, 2, 30)},
		{name: "die during our restart", s: inFlight(State{}), obs: died(143, 0), p: policy(), want: Decision{}},
		{name: "replayed die", obs: Observation{Observed: events.Observed{Kind: events.DockerDie, Replayed: true}}, p: policy(), want: skip(ReasonReplayed)},
		{name: "crash loop obeys the frame", s: state(restarted(40, 3, 0, 3, 3)), obs: exited(1), p: policy(), now: 60, want: skipUntil(ReasonFrameLimit, 640)},
		{name: "a paused container is left alone", obs: looked(events.Container{Running: true, Paused: true, Health: "unhealthy"}), p: policy(), want: skipUntil(ReasonPaused, 300)},
		{name: "a look at a healthy container", obs: looked(events.Container{Running: true, Health: "healthy"}), p: policy(), want: Decision{}},
		{name: "a look at an unhealthy container", s: state(restarted(0, 1, 0, 1, 1)), obs: looked(events.Container{Running: true, Health: "unhealthy"}), p: policy(), now: 15, want: restart(ReasonReconciled, 2, 0, 2, 2, 15)},

		// Case 1: a failed restart is tried again under the policy.
		{name: "failed restart: looked at when the policy allows", s: state(restarted(0, 1, 0, 1, 1), failed(1, "boom")), obs: Observation{Purpose: AfterFailure}, p: policy(), now: 1, want: Decision{Verdict: LookAgain, Reason: ReasonBetweenRestarts, RetryAt: at(15)}},
		{name: "failed restart: at once without a wait", s: state(restarted(0, 1, 0, 1, 1), failed(1, "boom")), obs: Observation{Purpose: AfterFailure}, p: with(func(p *config.Policy) { p.BetweenRestarts = 0 }), now: 1, want: Decision{Verdict: LookAgain, Reason: ReasonRetry, RetryAt: at(1)}},
		{name: "failed restart: retried", s: state(restarted(0, 1, 0, 1, 1), failed(1, "boom")), obs: looked(events.Container{ExitCode: 137}), p: policy(), now: 15, want: restart(ReasonRetry+": boom", 2, 0, 2, 2, 15)},
		{name: "failed restart: retried even with heal_exited off", s: state(restarted(0, 1, 0, 1, 1), failed(1, "boom")), obs: looked(events.Container{ExitCode: 0}), p: with(func(p *config.Policy) { p.HealExited = false }), now: 15, want: restart(ReasonRetry+": boom", 2, 0, 2, 2, 15)},
		{name: "failed restart: frame used up", s: state(restarted(0, 3, 0, 3, 3), failed(1, "boom")), obs: Observation{Purpose: AfterFailure}, p: policy(), now: 20, want: Decision{Verdict: LookAgain, Reason: ReasonFrameLimit, RetryAt: at(600)}},
		{name: "failed restart: gives up", s: state(restarted(0, 50, 0, 1, 1), failed(1, "boom")), obs: Observation{Purpose: AfterFailure}, p: policy(), now: 100, want: Decision{Verdict: GiveUp, Reason: ReasonBudgetSpent, Attempt: 50}},
		{name: "failed restart: the die of its stop is ours", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5), failed(6, "boom")), obs: died(0, 5), p: policy(), now: 6, want: Decision{}},
		{name: "failed restart: a stop after it is a user's", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), failed(6, "boom"), ev(events.DockerStop, 7)), obs: looked(events.Container{ExitCode: 137}), p: policy(), now: 30, want: skip(ReasonUserStopped)},

		// Case 3: a user's stop is never undone.
		{name: "queued restart: a stop while it waited ends the claim", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1)), obs: Observation{Purpose: BeforeSend}, p: policy(), now: 6, want: Decision{Verdict: Restart, Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1}},
		{name: "queued restart: user stopped", s: func() State {
			s := pending(state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1)))
			return Fold(s, ev(events.DockerKill, 6))
		}(), obs: Observation{Purpose: BeforeSend}, p: policy(), now: 7, want: skip(ReasonUserStopped)},
		{name: "queued restart: container gone", s: pending(State{}), obs: Observation{Purpose: BeforeSend, Gone: true}, p: policy(), want: skip(ReasonGone)},
		{name: "dependent restarted", obs: Observation{Purpose: AsDependent, Parent: "db", Look: events.Container{Running: true}}, p: policy(), now: 3, want: restart(ParentRestartedReason("db"), 1, 3, 1, 1, 3)},
		{name: "dependent stopped by its user", s: state(ev(events.DockerStart, 0), ev(events.DockerStop, 2)), obs: Observation{Purpose: AsDependent, Parent: "db"}, p: policy(), now: 3, want: skip(ReasonUserStopped)},
		{name: "dependent not running", obs: Observation{Purpose: AsDependent, Parent: "db"}, p: policy(), now: 3, want: skip(ReasonNotRunning)},
		{name: "dependent within its budget", s: state(restarted(0, 1, 0, 1, 1)), obs: Observation{Purpose: AsDependent, Parent: "db", Look: events.Container{Running: true}}, p: policy(), now: 3, want: skipUntil(ReasonBetweenRestarts, 15)},
		{name: "dependent within its budget: looked at again when it allows", s: func() State { s := state(restarted(0, 1, 0, 1, 1)); s.OwedParent = "db"; return s }(), obs: looked(events.Container{Running: true}), p: policy(), now: 15, want: restart(ParentRestartedReason("db"), 2, 0, 2, 2, 15)},
		{name: "dependent paused", obs: Observation{Purpose: AsDependent, Parent: "db", Look: events.Container{Running: true, Paused: true}}, p: policy(), now: 3, want: skip(ReasonPaused)},
		{name: "dependent that died with its parent started after the parent's restart", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 12)), obs: Observation{Purpose: AsDependent, Parent: "db", ParentDiedAt: at(10), ParentRunning: true}, p: policy(), now: 13, want: restart(DiedWithParentReason("db"), 1, 13, 1, 1, 13)},
		{name: "dependent that died with its parent started when the parent is started by someone else", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 12)), obs: Observation{Purpose: ParentStarted, Parent: "db", ParentDiedAt: at(10), ParentRunning: true}, p: with(func(p *config.Policy) { p.HealExited = false }), now: 13, want: restart(DiedWithParentReason("db"), 1, 13, 1, 1, 13)},
		{name: "dependent that died long after its parent is its own business", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 30)), obs: Observation{Purpose: ParentStarted, Parent: "db", ParentDiedAt: at(10), ParentRunning: true}, p: policy(), now: 31, want: Decision{}},
		{name: "dependent running when its parent is started by someone else", obs: Observation{Purpose: ParentStarted, Parent: "db", ParentDiedAt: at(10), ParentRunning: true, Look: events.Container{Running: true}}, p: policy(), now: 31, want: Decision{}},
		{name: "dependent that died with its parent but was stopped by a user", s: state(ev(events.DockerStart, 0), ev(events.DockerKill, 11), ev(events.DockerDie, 11)), obs: Observation{Purpose: ParentStarted, Parent: "db", ParentDiedAt: at(10), ParentRunning: true}, p: policy(), now: 13, want: skip(ReasonUserStopped)},
		{name: "dependent that died with its parent, within its budget", s: state(restarted(0, 1, 0, 1, 1), ev(events.DockerStart, 1), ev(events.DockerDie, 5)), obs: Observation{Purpose: ParentStarted, Parent: "db", ParentDiedAt: at(4), ParentRunning: true}, p: policy(), now: 6, want: Decision{Verdict: Skip, Reason: ReasonBetweenRestarts, RetryAt: at(15)}},
		{name: "dependent's die soon after another's is looked at", obs: func() Observation { o := died(1, 5); o.ParentDiedRecently = true; return o }(), p: with(func(p *config.Policy) { p.HealExited = false }), now: 5, want: Decision{Verdict: LookAgain, RetryAt: at(5).Add(exitSettle)}},
		{name: "dependent died with its parent, which is still down", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 5)), obs: Observation{Observed: events.Observed{Kind: events.DockerDie}, Purpose: FromLook, Parent: "db", ParentDiedAt: at(4)}, p: with(func(p *config.Policy) { p.HealExited = false }), now: 6, want: skip(ReasonParentDown)},
		{name: "dependent died with its parent, which runs again", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 5)), obs: Observation{Observed: events.Observed{Kind: events.DockerDie}, Purpose: FromLook, Parent: "db", ParentDiedAt: at(4), ParentRunning: true}, p: with(func(p *config.Policy) { p.HealExited = false }), now: 6, want: restart(DiedWithParentReason("db"), 1, 6, 1, 1, 6)},
		{name: "dependent of a recreated parent: recreated and started", obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentRunning: true, Look: events.Container{Running: true}}, p: policy(), now: 3, want: Decision{Verdict: Recreate, Reason: ParentRecreatedReason("vpn"), Start: true}},
		{name: "dependent of a recreated parent, died with it: recreated and started", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 5)), obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentDiedAt: at(4), ParentRunning: true}, p: policy(), now: 8, want: Decision{Verdict: Recreate, Reason: ParentRecreatedReason("vpn"), Start: true}},
		{name: "dependent of a recreated parent, stopped by a user: recreated, not started", s: state(ev(events.DockerStart, 0), ev(events.DockerStop, 5), ev(events.DockerDie, 5)), obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentDiedAt: at(4), ParentRunning: true}, p: policy(), now: 8, want: Decision{Verdict: Recreate, Reason: ParentRecreatedReason("vpn")}},
		{name: "dependent of a recreated parent, long exited: recreated, not started", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 5)), obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentDiedAt: at(400), ParentRunning: true}, p: policy(), now: 401, want: Decision{Verdict: Recreate, Reason: ParentRecreatedReason("vpn")}},
		{name: "dependent of a recreated parent with recreate=false: reported", obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentRunning: true, Look: events.Container{Running: true}}, p: with(func(p *config.Policy) { p.Recreate = false }), now: 3, want: skip(ReasonRecreateOff)},
		{name: "dependent of a recreated parent under dry run: reported", obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentRunning: true, Look: events.Container{Running: true}}, p: with(func(p *config.Policy) { p.DryRun = true }), now: 3, want: skip(ReasonRecreateNotActed + config.ActionNotify)},
		{name: "dependent of a recreated parent, already being recreated", s: pending(State{}), obs: Observation{Purpose: ParentRecreated, Parent: "vpn", ParentRunning: true, Look: events.Container{Running: true}}, p: policy(), now: 3, want: skip(ReasonInFlight)},
		{name: "dependent of a recreated parent, gone", obs: Observation{Purpose: ParentRecreated, Parent: "vpn", Gone: true}, p: policy(), now: 3, want: Decision{}},
		{name: "compose dependent restarted", obs: Observation{Purpose: AsDependent, Parent: "db", Compose: true, Look: events.Container{Running: true}}, p: policy(), now: 3, want: restart(ComposeRestartedReason("db"), 1, 3, 1, 1, 3)},
		{name: "compose dependent within its budget", s: state(restarted(0, 1, 0, 1, 1)), obs: Observation{Purpose: AsDependent, Parent: "db", Compose: true, Look: events.Container{Running: true}}, p: policy(), now: 3, want: skipUntil(ReasonBetweenRestarts, 15)},
		{name: "dependent in a cycle: reported, not acted on", obs: Observation{Purpose: AsDependent, Parent: "db", Cycle: true, Look: events.Container{Running: true}}, p: policy(), now: 3, want: skip(ReasonCycle)},
		{name: "dependent of a parent that is not selected: reported, not acted on", s: state(ev(events.DockerStart, 0), ev(events.DockerDie, 5)), obs: Observation{Purpose: ParentStarted, Parent: "vpn", ParentNotSelected: true}, p: policy(), now: 6, want: skip(ReasonNotSelected)},
		{name: "dependent given up", s: state(restarted(0, 50, 0, 1, 1), ev(events.GaveUp, 1)), obs: Observation{Purpose: AsDependent, Parent: "db", Look: events.Container{Running: true}}, p: policy(), now: 30, want: skip(ReasonGivenUp)},

		// Case 4: Swarm and one-offs are left to their owners.
		{name: "swarm task unhealthy", obs: labelled(unhealthy(), swarmTaskLabel, "x1"), p: policy(), want: skip(ReasonSwarm)},
		{name: "swarm task told once", s: state(skippedEv(0, ReasonSwarm)), obs: labelled(unhealthy(), swarmTaskLabel, "x1"), p: policy(), now: 10, want: Decision{}},
		{name: "swarm task died", obs: labelled(died(1, 0), swarmTaskLabel, "x1"), p: policy(), want: skip(ReasonSwarm)},
		{name: "swarm task start is nothing", obs: Observation{Observed: events.Observed{Kind: events.DockerStart, Labels: map[string]string{swarmTaskLabel: "x1"}}}, p: policy(), want: Decision{}},
		{name: "one-off exited", obs: labelled(exited(1), oneOffLabel, "True"), p: policy(), want: skip(ReasonOneOff)},
		{name: "one-off told once", s: state(skippedEv(0, ReasonOneOff)), obs: labelled(exited(1), oneOffLabel, "True"), p: policy(), want: Decision{}},

		{name: "action stop stops an unhealthy container", obs: unhealthy(), p: act(config.ActionStop), want: as(restart(ReasonUnhealthy, 1, 0, 1, 1, 0), config.ActionStop)},
		{name: "action stop leaves a crashed container stopped", obs: exited(1), p: act(config.ActionStop), want: skip(ReasonActionStop)},
		{name: "action stop after our stop: left stopped", s: state(ev(events.DockerStart, 0), stoppedBy(restarted(5, 1, 5, 1, 1)), ev(events.DockerKill, 5), ev(events.DockerDie, 6), ev(events.Stopped, 6)), obs: exited(0), p: act(config.ActionStop), now: 7, want: skip(ReasonUserStopped)},
		{name: "action stop retries a failed stop", s: state(ev(events.DockerStart, 0), stoppedBy(restarted(5, 1, 5, 1, 1)), failed(6, "x")), obs: looked(events.Container{ID: "c1", Running: true, Health: "unhealthy"}), p: act(config.ActionStop), now: 30, want: as(restart(ReasonReconciled, 2, 5, 2, 2, 30), config.ActionStop)},
		{name: "action notify decides without sending", obs: unhealthy(), p: act(config.ActionNotify), want: as(restart(ReasonUnhealthy, 1, 0, 1, 1, 0), config.ActionNotify)},
		{name: "action notify keeps the budget", s: state(notified(restarted(0, 1, 0, 1, 1))), obs: unhealthy(), p: act(config.ActionNotify), now: 10, want: skipUntil(ReasonBetweenRestarts, 15)},
		{name: "action notify frame limit", s: state(notified(restarted(40, 3, 0, 3, 3))), obs: unhealthy(), p: act(config.ActionNotify), now: 60, want: skipUntil(ReasonFrameLimit, 640)},
		{name: "action none records only", obs: unhealthy(), p: act(config.ActionNone), want: Decision{}},
		{name: "action none on a crash", obs: exited(1), p: act(config.ActionNone), want: Decision{}},
		{name: "dry run is notify", obs: unhealthy(), p: with(func(p *config.Policy) { p.DryRun = true }), want: as(restart(ReasonUnhealthy, 1, 0, 1, 1, 0), config.ActionNotify)},
		{name: "dry run with action stop is notify", obs: unhealthy(), p: with(func(p *config.Policy) { p.DryRun, p.Action = true, config.ActionStop }), want: as(restart(ReasonUnhealthy, 1, 0, 1, 1, 0), config.ActionNotify)},
		{name: "dry run crash is notify", obs: exited(2), p: with(func(p *config.Policy) { p.DryRun = true }), want: as(restart("exited with code 2", 1, 0, 1, 1, 0), config.ActionNotify)},
		{name: "paused: left alone until the pause ends", s: state(paused(0, 100)), obs: unhealthy(), p: policy(), now: 10, want: skipUntil(ReasonMaintenance, 100)},
		{name: "paused without end", s: state(paused(0, -1)), obs: exited(1), p: policy(), now: 10, want: skip(ReasonMaintenance)},
		{name: "paused: a healthy event is nothing", s: state(paused(0, 100)), obs: Observation{Observed: events.Observed{Kind: events.DockerHealthy}}, p: policy(), now: 10, want: Decision{}},
		{name: "pause over", s: state(paused(0, 100)), obs: unhealthy(), p: policy(), now: 100, want: restart(ReasonUnhealthy, 1, 100, 1, 1, 100)},
		{name: "resumed", s: state(paused(0, -1), ev(events.ControlResumed, 5)), obs: unhealthy(), p: policy(), now: 10, want: restart(ReasonUnhealthy, 1, 10, 1, 1, 10)},
		{name: "dry-run counters do not bind real healing", s: state(dry(restarted(0, 50, 0, 3, 1)), ev(events.GaveUp, 1)), obs: unhealthy(), p: policy(), now: 10, want: restart(ReasonUnhealthy, 1, 10, 1, 1, 10)},
		{name: "a dependent with action stop is restarted", s: State{}, obs: Observation{Observed: events.Observed{ContainerID: "c1"}, Purpose: AsDependent, Look: events.Container{Running: true}, Parent: "vpn"}, p: act(config.ActionStop), want: restart(ParentRestartedReason("vpn"), 1, 0, 1, 1, 0)},
		{name: "a death long after a failed restart is the container's own", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), failed(6, "api"), ev(events.DockerDie, 60)), obs: exited(0), p: with(func(p *config.Policy) { p.HealExited = false }), now: 61, want: Decision{}},
		{name: "a death in a failed restart is ours to finish", s: state(ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerDie, 6), failed(6, "start failed")), obs: exited(0), p: with(func(p *config.Policy) { p.HealExited = false }), now: 30, want: restart(ReasonRetry+": start failed", 2, 5, 2, 2, 30)},
		// A dependent restarted while healthy, dropped after it turned
		// unhealthy: its budget is not renewed by a healthy stretch that ended.
		{name: "a dropped restart does not renew the budget", s: state(restarted(0, 49, 0, 1, 1), ev(events.RestartSucceeded, 1), ev(events.DockerHealthy, 2), restarted(5, 50, 5, 1, 2), paused(6, 300), ev(events.DockerUnhealthy, 7), skippedEv(8, ReasonDropped+": "+ReasonMaintenance)),
			obs: looked(events.Container{ID: "c1", Running: true, Health: "unhealthy"}), p: policy(), now: 400, want: restart(ReasonReconciled, 50, 400, 1, 2, 400)},
		{name: "dry run gives up as it would", s: state(notified(restarted(0, 50, 0, 1, 1))), obs: unhealthy(), p: with(func(p *config.Policy) { p.DryRun = true }), now: 1000, want: Decision{Verdict: GiveUp, Reason: ReasonBudgetSpent, Attempt: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Decide(tt.s, tt.obs, tt.p, at(tt.now)); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Fold keeps what a decision needs; the whole value is compared.
func TestFold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		es   []events.Event
		want State
	}{
		{name: "restart decision", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 2, 1, 2, 3)},
			// Taken over by a new healer: a claim it never finished ends at the last event.
			want: State{LastRestart: at(5), Attempt: 2, FrameStart: at(1), FrameRestarts: 2, BackoffStep: 3, StartedAt: at(0), Ours: true, RestartDone: at(5)}},
		{name: "failed restart", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5), failed(6, "no mount"), failed(8, "again")},
			want: State{LastRestart: at(5), Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, StartedAt: at(0), Ours: true, RestartDone: at(8), Failures: 2, LastError: "again"}},
		{name: "started again", es: []events.Event{restarted(5, 1, 5, 1, 1), failed(6, "x"), ev(events.DockerStart, 9), ev(events.DockerHealthy, 10)},
			want: State{LastRestart: at(5), Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, StartedAt: at(9), RestartDone: at(6), HealthySince: at(10)}},
		{name: "user stop", es: []events.Event{ev(events.DockerStart, 0), ev(events.DockerHealthy, 1), ev(events.DockerKill, 4), ev(events.DockerDie, 4)},
			want: State{StartedAt: at(0), UserStopped: true, Died: true, DiedAt: at(4), LongestHealthy: 3 * time.Second}},
		{name: "notify decision counts, is not ours", es: []events.Event{ev(events.DockerStart, 0), notified(restarted(5, 2, 1, 2, 3)), ev(events.DockerKill, 6)},
			want: State{LastRestart: at(5), Attempt: 2, FrameStart: at(1), FrameRestarts: 2, BackoffStep: 3, StartedAt: at(0), UserStopped: true}},
		{name: "stopped by action stop", es: []events.Event{ev(events.DockerStart, 0), stoppedBy(restarted(5, 1, 5, 1, 1)), ev(events.DockerKill, 5), ev(events.DockerDie, 6), ev(events.Stopped, 6)},
			want: State{LastRestart: at(5), Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, StartedAt: at(0), Ours: true, RestartDone: at(6), UserStopped: true, Died: true, DiedAt: at(6)}},
		{name: "gave up", es: []events.Event{restarted(5, 9, 5, 1, 1), ev(events.GaveUp, 6)},
			want: State{LastRestart: at(5), Attempt: 9, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, Ours: true, GaveUp: true, RestartDone: at(6)}},
		// A restart dropped unsent spent nothing: the counters are what
		// they were before its decision.
		{name: "queued restart dropped", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), skippedEv(6, ReasonDropped+": "+ReasonMaintenance), ev(events.DockerKill, 7)},
			want: State{StartedAt: at(0), RestartDone: at(6), UserStopped: true}},
		{name: "second restart dropped", es: []events.Event{ev(events.DockerStart, 0), ev(events.DockerHealthy, 1), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5), ev(events.DockerStart, 6),
			ev(events.DockerHealthy, 8), ev(events.DockerUnhealthy, 20), restarted(21, 2, 5, 2, 2), skippedEv(22, ReasonDropped+": "+ReasonUserStopped)},
			want: State{LastRestart: at(5), Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, StartedAt: at(6), RestartDone: at(22), UserStopped: true, LongestHealthy: 12 * time.Second}},
		{name: "a claim done is spent", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerKill, 5), ev(events.RestartSucceeded, 6), skippedEv(7, ReasonDropped+": "+ReasonMaintenance)},
			want: State{LastRestart: at(5), Attempt: 1, FrameStart: at(5), FrameRestarts: 1, BackoffStep: 1, StartedAt: at(0), RestartDone: at(7)}},
		// The container's health goes on while a claim waits: a drop puts
		// back the counters, not the health seen before the decision.
		{name: "turned healthy while a dropped restart waited", es: []events.Event{ev(events.DockerStart, 0), ev(events.DockerUnhealthy, 2), restarted(5, 1, 5, 1, 1), ev(events.DockerHealthy, 6), skippedEv(7, ReasonDropped+": "+ReasonMaintenance)},
			want: State{StartedAt: at(0), RestartDone: at(7), HealthySince: at(6)}},
		{name: "turned unhealthy while a dropped restart waited", es: []events.Event{ev(events.DockerStart, 0), ev(events.DockerHealthy, 1), restarted(5, 1, 5, 1, 1), ev(events.DockerUnhealthy, 8), skippedEv(9, ReasonDropped+": "+ReasonMaintenance)},
			want: State{StartedAt: at(0), RestartDone: at(9), LongestHealthy: 7 * time.Second}},
		// A stop while the claim waited was a user's (nothing was sent),
		// whatever the drop's reason: a pause that came too, an inspect
		// that failed.
		{name: "stopped while a restart waited, dropped for the pause", es: []events.Event{ev(events.DockerStart, 0), ev(events.DockerUnhealthy, 2), restarted(5, 1, 5, 1, 1), paused(6, -1), ev(events.DockerKill, 7), ev(events.DockerDie, 7), skippedEv(8, ReasonDropped+": "+ReasonMaintenance)},
			want: State{StartedAt: at(0), RestartDone: at(8), Paused: true, UserStopped: true, Died: true, DiedAt: at(7)}},
		{name: "stopped while a restart waited, dropped as gone", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerStop, 7), skippedEv(8, ReasonDropped+": "+ReasonGone)},
			want: State{StartedAt: at(0), RestartDone: at(8), UserStopped: true}},
		{name: "stopped and started while a restart waited", es: []events.Event{ev(events.DockerStart, 0), restarted(5, 1, 5, 1, 1), ev(events.DockerStop, 6), ev(events.DockerStart, 7), skippedEv(8, ReasonDropped+": "+ReasonGone)},
			want: State{StartedAt: at(7), RestartDone: at(8)}},
		{name: "dry-run counters", es: []events.Event{dry(restarted(5, 2, 1, 2, 3))},
			want: State{LastRestart: at(5), Attempt: 2, FrameStart: at(1), FrameRestarts: 2, BackoffStep: 3, DryRunCounts: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FoldAll(tt.es); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// State is stored as JSON by others: it must round-trip, runtime fields
// aside.
func TestStateJSON(t *testing.T) {
	t.Parallel()
	s := FoldAll([]events.Event{ev(events.DockerStart, 0), restarted(5, 2, 1, 2, 3), failed(6, "x"), skippedEv(7, ReasonSwarm), ev(events.DockerHealthy, 8)})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Errorf("round trip %s:\ngot  %+v\nwant %+v", b, back, s)
	}
}

// A crash loop under the default policy, decided event by event: exactly
// max_restarts_in_frame restarts, then nothing until the next frame.
func TestCrashLoopBudget(t *testing.T) {
	t.Parallel()
	p := policy()
	var s State
	restarts := 0
	for sec := 0; sec < 630; sec++ {
		d := Decide(s, unhealthy(), p, at(sec))
		if d.Verdict == Restart {
			restarts++
			fs := d.FrameStart
			e := ev(events.RestartRequested, sec)
			e.Data.Attempt, e.Data.FrameStart, e.Data.FrameRestarts, e.Data.BackoffStep = d.Attempt, &fs, d.FrameRestarts, d.BackoffStep
			s = Fold(s, e)
		}
	}
	if restarts != 3 {
		t.Errorf("%d restarts before seconds_between_next_frame ran out, want 3", restarts)
	}
	if d := Decide(s, unhealthy(), p, at(30+600)); d != restart(ReasonUnhealthy, 4, 630, 1, 4, 630) {
		t.Errorf("after seconds_between_next_frame: %+v, want a restart opening a new frame", d)
	}
}

// Case 5: a container that flaps, with thousands of events between its
// restarts, keeps its frame limit and its give-up.
func TestFlappingKeepsTheBudget(t *testing.T) {
	t.Parallel()
	p := with(func(p *config.Policy) { p.GiveUpAfterRestarts = 4; p.BetweenFrames = 30 * time.Second })
	var s State
	var verdicts []Decision
	for ms := 0; ms < 600_000; ms += 250 {
		// Health changes every 250 ms: 2400 events, far beyond any history.
		k := events.DockerHealthy
		if ms%500 == 0 {
			k = events.DockerUnhealthy
		}
		e := evMS(k, ms)
		if k == events.DockerUnhealthy {
			d := Decide(s, unhealthy(), p, e.Time)
			if d.Verdict == Restart || d.Verdict == GiveUp || (d.Verdict == Skip && d.Reason != ReasonBetweenRestarts) {
				verdicts = append(verdicts, d)
			}
			switch d.Verdict {
			case Restart:
				fs := d.FrameStart
				r := evMS(events.RestartRequested, ms)
				r.Data.Attempt, r.Data.FrameStart, r.Data.FrameRestarts, r.Data.BackoffStep = d.Attempt, &fs, d.FrameRestarts, d.BackoffStep
				s = Fold(s, r)
			case GiveUp:
				s = Fold(s, evMS(events.GaveUp, ms))
			}
		}
		s = Fold(s, e)
	}
	restarts, gaveUp := 0, 0
	for _, d := range verdicts {
		switch d.Verdict {
		case Restart:
			restarts++
		case GiveUp:
			gaveUp++
		}
	}
	if restarts != 4 || gaveUp != 1 {
		t.Errorf("%d restarts and %d give-ups in 10 minutes of flapping, want 4 and 1", restarts, gaveUp)
	}
	if !s.GaveUp || s.Attempt != 4 {
		t.Errorf("state after flapping: %+v, want given up after 4 attempts", s)
	}
}

// The daemon logs kill after signalling, so a fast exit can put the die
// before the kill: the stop is a user's all the same.
func TestKillAfterDieIsStillAUserStop(t *testing.T) {
	t.Parallel()
	s := state(ev(events.DockerStart, 0), ev(events.DockerDie, 10))
	if d := Decide(s, died(0, 10), with(func(p *config.Policy) { p.HealExitZero = true }), at(10)); d.Verdict != LookAgain {
		t.Fatalf("die: %+v, want a look shortly after", d)
	}
	s = Fold(Fold(s, ev(events.DockerKill, 10)), ev(events.DockerStop, 10))
	if d := Decide(s, exited(0), with(func(p *config.Policy) { p.HealExitZero = true }), at(11)); d != skip(ReasonUserStopped) {
		t.Errorf("got %+v, want a skip: stopped by a user", d)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := policy()
	s := state(ev(events.DockerStart, 0), restarted(20, 2, 0, 2, 2), ev(events.DockerKill, 20), ev(events.DockerStart, 21), ev(events.DockerHealthy, 22))
	o := unhealthy()
	e := ev(events.DockerUnhealthy, 59)
	now := at(60)
	b.ReportAllocs()
	for b.Loop() {
		s2 := Fold(s, e)
		if d := Decide(s2, o, p, now); d.Verdict != Restart {
			b.Fatal(d)
		}
	}
}
