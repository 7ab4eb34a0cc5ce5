package heal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// daemonStopTimeout is the daemon's stop timeout for a container without
// its own.
const daemonStopTimeout = 10 * time.Second

// stopTimeout is the stop timeout to send (negative: none, so the daemon
// uses the container's own) and, if known, the restart's deadline; zero
// means the deadline waits for an inspect.
func (h *Healer) stopTimeout(ctx context.Context, id string, p config.Policy) (time.Duration, time.Duration) {
	if p.StopTimeoutFromLabel {
		t := min(p.StopTimeout, h.o.MaxLabelStopTimeout)
		return t, ceilSecond(t) + h.o.RestartMargin
	}
	if p.StopTimeout == daemonStopTimeout {
		// The daemon's default is ours: it picks the container's own or
		// this one without an inspect on the way.
		return -1, 0
	}
	c, err := h.o.Docker.Inspect(ctx, id)
	if err == nil && c.StopTimeout > 0 {
		return -1, c.StopTimeout + h.o.RestartMargin
	}
	return p.StopTimeout, ceilSecond(p.StopTimeout) + h.o.RestartMargin
}

func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second * time.Second
}

// errRestartDeadline is a restart that did not finish in its stop timeout
// plus the margin: its slot is freed, and the policy tries again.
var errRestartDeadline = errors.New("restart did not finish in its stop timeout plus margin")

// send restarts the container within a deadline of its stop timeout plus a
// margin, so a hung restart frees its slot.
func (h *Healer) send(id string, p config.Policy, action string) error {
	ctx, cancel := context.WithCancelCause(h.ctx)
	defer cancel(nil)
	timeout, deadline := h.stopTimeout(ctx, id, p)
	started := time.Now()
	expire := func(d time.Duration) {
		cancel(fmt.Errorf("%w (%s)", errRestartDeadline, d.Round(time.Millisecond)))
	}
	var timer *time.Timer
	if deadline > 0 {
		timer = time.AfterFunc(deadline, func() { expire(deadline) })
	} else {
		// Sent without a timeout: the container's own applies, 10 s unless
		// it has one. Only a restart still running after 10 s plus the
		// margin needs to know which, so only that one costs an inspect.
		first := daemonStopTimeout + h.o.RestartMargin
		timer = time.AfterFunc(first, func() {
			ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := h.o.Docker.Inspect(ictx, id)
			icancel()
			if err != nil || c.StopTimeout <= daemonStopTimeout {
				expire(first)
				return
			}
			d := c.StopTimeout + h.o.RestartMargin
			select {
			case <-ctx.Done():
			case <-time.After(max(d-time.Since(started), 0)):
				expire(d)
			}
		})
	}
	call := h.o.Docker.Restart
	if action == config.ActionStop {
		call = h.o.Docker.Stop
	}
	err := call(ctx, id, timeout)
	timer.Stop()
	if err != nil && errors.Is(context.Cause(ctx), errRestartDeadline) {
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return err
}

// endClaimAfterPanic ends the container's claim after a panic in its
// restart; h.mu is held. Not sent yet, it is dropped, as a look before
// sending would drop it, and spends nothing. Maybe sent, it is spent and
// done now: a stop from now on is not taken for our restart's.
func (h *Healer) endClaimAfterPanic(o events.Observed, cause string, p config.Policy) {
	e := h.entry(o.ContainerID)
	if !e.state.InFlight {
		return
	}
	pending := e.state.Pending
	e.state.InFlight, e.state.Pending = false, false
	if pending {
		h.decision(e, events.RestartSkipped, cause, o, Decision{Verdict: Skip, Reason: ReasonDropped + ": " + ReasonPanic}, p)
		return
	}
	e.state.RestartDone, e.state.Claimed = h.o.Now(), Counters{}
}

// acquire takes a restart slot, and reports whether it had to wait for one.
func (h *Healer) acquire() bool {
	select {
	case h.sem <- struct{}{}:
		return false
	default:
	}
	h.sem <- struct{}{}
	return true
}

func (h *Healer) restart(o events.Observed, cause string, req events.Event, p config.Policy) {
	held := false
	defer func() {
		if r := recover(); r != nil {
			// A panic on this container's input must not hold its slot or
			// its claim for ever; the spawn's guard logs and publishes it.
			if held {
				<-h.sem
			}
			h.mu.Lock()
			h.endClaimAfterPanic(o, cause, p)
			h.mu.Unlock()
			panic(r)
		}
	}()
	waited := h.acquire()
	held = true
	if waited && !h.stillWanted(o, cause, p) {
		held = false
		<-h.sem
		return
	}
	h.mu.Lock()
	e := h.entry(o.ContainerID)
	e.state.Pending = false
	if st := e.state; st.UserStopped || st.PausedAt(h.o.Now()) {
		// A stop or a pause came in the moment between the claim and now:
		// it ends the claim, as a look before sending would.
		reason := ReasonUserStopped
		if !st.UserStopped {
			reason = ReasonMaintenance
		}
		e.state.InFlight = false
		h.decision(e, events.RestartSkipped, cause, o, Decision{Verdict: Skip, Reason: ReasonDropped + ": " + reason}, p)
		h.mu.Unlock()
		held = false
		<-h.sem
		return
	}
	h.mu.Unlock()
	decided := time.Since(o.Received)
	h.o.DecisionLatency(decided)
	// What the message will quote, read beside the restart (not before it,
	// which would delay it; not after, when the probe of a stopping
	// container may have failed for another reason).
	quoted := h.quote(o, p)
	started := time.Now()
	err := h.send(o.ContainerID, p, req.Data.Action)
	took := time.Since(started)
	// Released before the dependents, which take slots of their own.
	held = false
	<-h.sem
	q := <-quoted
	h.o.Restarted(o.Name, err)
	ms := float64(took.Microseconds()) / 1000
	data := events.Data{Reason: req.Data.Reason, DurationMS: ms, Attempt: req.Data.Attempt, FrameRestarts: req.Data.FrameRestarts, Action: req.Data.Action, Parent: req.Data.Parent,
		Output: q.output, LogTail: q.logTail}
	if err != nil {
		h.o.Log.Error("restart failed", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "attempt", req.Data.Attempt, "err", err)
		data.Error = err.Error()
		h.failed(o, cause, data, p)
		return
	}
	if h.o.Healed != nil && !o.DockerTime.IsZero() {
		h.o.Healed(time.Since(o.DockerTime))
	}
	if req.Data.Action == config.ActionStop {
		h.o.Log.Info("stopped (action stop); left stopped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took)
		h.finish(o, h.derived(events.Stopped, cause, o, data))
		return
	}
	h.o.Log.Info("restarted", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "decided_in", decided,
		"attempt", req.Data.Attempt, "frame_restarts", req.Data.FrameRestarts)
	h.finish(o, h.derived(events.RestartSucceeded, cause, o, data))
	if p.RestartDependents {
		h.dependentsOf(o, cause, AsDependent)
	}
}

// stillWanted looks again at a container whose restart waited for a slot:
// a user's stop meanwhile ends our claim.
func (h *Healer) stillWanted(o events.Observed, cause string, p config.Policy) bool {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	c, err := h.o.Docker.Inspect(ctx, o.ContainerID)
	cancel()
	obs := Observation{Observed: o, Purpose: BeforeSend, Look: c, Gone: err != nil}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	d := Decide(e.state, obs, p, h.o.Now())
	if d.Verdict == Restart {
		return true
	}
	e.state.InFlight, e.state.Pending = false, false
	h.o.Log.Info("queued restart dropped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason)
	d.Reason = ReasonDropped + ": " + d.Reason
	h.decision(e, events.RestartSkipped, cause, o, d, p)
	return false
}

// failed records a failed restart and asks the policy when to try again.
func (h *Healer) failed(o events.Observed, cause string, data events.Data, p config.Policy) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	e.state.InFlight, e.state.Pending = false, false
	h.record(e, h.derived(events.RestartFailed, cause, o, data))
	obs := Observation{Observed: o, Purpose: AfterFailure}
	h.act(e, obs, cause, Decide(e.state, obs, p, h.o.Now()), p)
}

func (h *Healer) finish(o events.Observed, outcome events.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	e.state.InFlight, e.state.Pending = false, false
	h.record(e, outcome)
}
