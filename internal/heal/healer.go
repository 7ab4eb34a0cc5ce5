// Package heal owns the healing loop: it folds each container's events into
// a State, asks the pure Decide what to do about every observation, turns
// the decision into Docker calls, timers and events, restarts containers
// concurrently within a bound, and publishes every observation, decision and
// outcome. Its memory is the State per container, rebuilt at start from the
// stored history.
package heal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// Docker is what the healer needs of the engine.
type Docker interface {
	Restart(ctx context.Context, id string, stopTimeout time.Duration) error
	Stop(ctx context.Context, id string, stopTimeout time.Duration) error
	LogTail(ctx context.Context, id string, lines, maxBytes int) (string, error)
	Inspect(ctx context.Context, id string) (events.Container, error)
	Dependents(ctx context.Context, parentID, parentName string) ([]events.Container, error)
}

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Options configure a Healer.
type Options struct {
	Host      string
	Label     string
	Namespace string
	Policy    config.Policy
	// MaxConcurrent bounds restarts running at once.
	MaxConcurrent int
	Docker        Docker
	// Publisher gets every event; History gets those about a container,
	// for rebuilding state after a restart of the healer.
	Publisher Publisher
	History   Publisher
	// States keeps each container's state for the next start.
	States StateStore
	// Initial is each container's state at start, by container id.
	Initial map[string]State
	Log     *slog.Logger
	// DecisionLatency gets the time from reading an event to sending its
	// restart request.
	DecisionLatency func(time.Duration)
	// Restarted is told of every finished restart, for metrics.
	Restarted func(container string, err error)
	// Healed gets the time from the daemon's event to the end of a
	// successful restart; nil drops it.
	Healed func(time.Duration)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterFunc runs f after d, for the looks that decisions ask for; nil
	// means time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) Timer
	// MaxLabelStopTimeout caps a stop timeout asked for by a label; zero
	// means 5 minutes.
	MaxLabelStopTimeout time.Duration
	// RestartMargin is added to a restart's stop timeout for its deadline;
	// zero means 30 s.
	RestartMargin time.Duration
	// Routes is told of the notify URLs in containers' labels, so that
	// notifiers can serve them; nil drops them.
	Routes Routes
}

// StateStore keeps each container's state across restarts of the healer.
// It must not block: the event stream waits on the healer.
type StateStore interface {
	// Save is told each container's state when it changes.
	Save(id string, s State)
	// Forget is told of a container that is gone.
	Forget(id string)
}

// Timer is a timer that AfterFunc started.
type Timer interface {
	Stop() bool
}

// Routes makes a container's own notify URL known to the notifiers. It
// must not block: the event stream waits on the healer.
type Routes interface {
	Route(id, url string)
}

// daemonStopTimeout is the daemon's stop timeout for a container without
// its own.
const daemonStopTimeout = 10 * time.Second

// entry is the healer's memory of one container.
type entry struct {
	state State
	timer Timer
	// due is when timer fires; later is a look asked for after it.
	due, later time.Time
}

// Healer heals selected containers.
type Healer struct {
	o   Options
	sem chan struct{}
	wg  sync.WaitGroup
	// ctx is the lifetime of restarts: they outlive shutdown's cancel, since
	// a restart cut in half leaves the container stopped.
	ctx context.Context

	overrides *config.Overrides

	mu      sync.Mutex
	state   map[string]*entry
	warned  map[string]struct{}
	stopped bool
}

// New returns a healer; Run must be running for restarts to happen.
func New(o Options) *Healer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if o.MaxLabelStopTimeout <= 0 {
		o.MaxLabelStopTimeout = 5 * time.Minute
	}
	if o.RestartMargin <= 0 {
		o.RestartMargin = 30 * time.Second
	}
	if o.DecisionLatency == nil {
		o.DecisionLatency = func(time.Duration) {}
	}
	if o.Restarted == nil {
		o.Restarted = func(string, error) {}
	}
	if o.History == nil {
		o.History = discard{}
	}
	if o.States == nil {
		o.States = discard{}
	}
	h := &Healer{
		o:         o,
		sem:       make(chan struct{}, max(o.MaxConcurrent, 1)),
		ctx:       context.Background(),
		state:     map[string]*entry{},
		warned:    map[string]struct{}{},
		overrides: config.NewOverrides(o.Label),
	}
	for id, s := range o.Initial {
		s.InFlight, s.Pending = false, false
		e := &entry{state: s}
		h.state[id] = e
		// A pause with an end survives the healer's restart: it still ends
		// by itself, and the container is looked at then.
		if e.state.Paused && !e.state.PausedUntil.IsZero() {
			h.lookAt(e, events.Observed{ContainerID: id}, "control/"+events.ShortID(id), e.state.PausedUntil)
		}
	}
	return h
}

type discard struct{}

func (discard) Publish(events.Event) {}
func (discard) Save(string, State)   {}
func (discard) Forget(string)        {}

// State returns the healer's state of a container, for tests and status.
func (h *Healer) State(id string) State {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.state[id]; e != nil {
		return e.state
	}
	return State{}
}

// Handle takes one observation. It never blocks on I/O, since it runs on
// the Docker event stream's goroutine.
func (h *Healer) Handle(o events.Observed) {
	if !config.Selected(o.Labels, h.o.Label) || !config.InNamespace(o.Name, h.o.Namespace) {
		return
	}
	ev := o.Event(h.o.Host)
	cause := ev.ID
	policy := h.policy(o, cause)
	now := h.o.Now()
	obs := Observation{Observed: o}

	h.mu.Lock()
	e := h.entry(o.ContainerID)
	d := Decide(e.state, obs, policy, now)
	h.record(e, ev)
	if o.Kind == events.DockerDestroy {
		h.forget(o.ContainerID, e)
		h.mu.Unlock()
		return
	}
	restart := h.act(e, obs, cause, d, policy)
	h.mu.Unlock()

	h.o.Log.Debug("observed", "container", o.Name, "event", o.Kind, "reconciled", o.Reconciled, "replayed", o.Replayed, "verdict", d.Verdict)
	if restart {
		// Hand this processor to the restart, which is next in line for it,
		// so its request goes out before the next event is read: in a storm
		// the other processors are busy, and it would wait behind the burst.
		runtime.Gosched()
	}
}

// act turns a decision into events, a timer or a restart, and reports
// whether it spawned a restart; h.mu is held.
func (h *Healer) act(e *entry, o Observation, cause string, d Decision, p config.Policy) bool {
	switch d.Verdict {
	case Skip:
		h.o.Log.Info("restart skipped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "retry_at", d.RetryAt)
		h.decision(e, events.RestartSkipped, cause, o.Observed, d, p)
		if !d.RetryAt.IsZero() {
			h.lookAt(e, o.Observed, cause, d.RetryAt)
		}
	case LookAgain:
		h.lookAt(e, o.Observed, cause, d.RetryAt)
	case GiveUp:
		h.o.Log.Warn("giving up on container", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "attempts", d.Attempt)
		h.decision(e, events.GaveUp, cause, o.Observed, d, p)
	case Restart:
		req := h.decision(e, events.RestartRequested, cause, o.Observed, d, p)
		if d.Action == config.ActionNotify {
			// Decided and told; nothing is sent to Docker.
			h.o.Log.Info("restart decided, not sent (action notify)", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "dry_run", p.DryRun)
			return false
		}
		e.state.InFlight, e.state.Pending = true, true
		if !h.spawnLocked(func() { h.restart(o.Observed, cause, req, p) }) {
			e.state.InFlight, e.state.Pending = false, false
			// Never sent, so not a failure: nothing of ours is in flight.
			h.record(e, h.derived(events.RestartSkipped, cause, o.Observed, events.Data{Reason: ReasonDropped + ": healer stopping"}, p))
			return false
		}
		return true
	}
	return false
}

// lookAt makes sure the container is looked at at t; h.mu is held. It
// has one timer, at the earliest time asked for; a later time is kept and
// looked at after it, since each look may have a reason of its own.
func (h *Healer) lookAt(e *entry, o events.Observed, cause string, t time.Time) {
	if h.stopped {
		return
	}
	if e.timer != nil {
		if !e.due.After(t) {
			e.later = latest(e.later, t)
			return
		}
		e.timer.Stop()
		e.later = latest(e.later, e.due)
	}
	id, kind := o.ContainerID, o.Kind
	// Each look is a cause of its own: decisions' ids derive from their
	// cause, and a retry must not be taken for a duplicate of the first try.
	if i := strings.Index(cause, "/look@"); i >= 0 {
		cause = cause[:i]
	}
	look := cause + "/look@" + strconv.FormatInt(t.UnixNano(), 10)
	var timer Timer
	timer = h.o.AfterFunc(max(t.Sub(h.o.Now()), 0), func() {
		h.mu.Lock()
		if e.timer != timer {
			h.mu.Unlock()
			return
		}
		e.timer, e.due = nil, time.Time{}
		later := e.later
		e.later = time.Time{}
		h.spawnLocked(func() {
			h.look(id, kind, look)
			if !later.IsZero() {
				h.mu.Lock()
				h.lookAt(e, o, cause, later)
				h.mu.Unlock()
			}
		})
		h.mu.Unlock()
	})
	e.timer, e.due = timer, t
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// spawnLocked runs f in its own goroutine unless the healer is stopping,
// and reports whether it did; Run waits for what it spawned. h.mu is held.
func (h *Healer) spawnLocked(f func()) bool {
	if h.stopped {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = (&safe.Guard{Log: h.o.Log, Pub: h.o.Publisher, Host: h.o.Host}).Call("healer: spawned work", nil, f)
	}()
	return true
}

// entry returns the container's memory; h.mu is held.
func (h *Healer) entry(id string) *entry {
	e := h.state[id]
	if e == nil {
		e = &entry{}
		h.state[id] = e
	}
	return e
}

// record publishes ev, folds it into the container's state and, if the
// state is rebuilt from it, appends it to the stored history; h.mu is held.
func (h *Healer) record(e *entry, ev events.Event) {
	h.o.Publisher.Publish(ev)
	before := e.state
	e.state = Fold(e.state, ev)
	if Stored(ev.Kind()) {
		h.o.History.Publish(ev)
	}
	// Saved after its history event is queued: the store writes a state
	// only once the events it folds are stored.
	if stored(before) != stored(e.state) {
		h.o.States.Save(ev.Data.ContainerID, stored(e.state))
	}
}

// stored is the part of a state that outlives the healer.
func stored(s State) State {
	s.InFlight, s.Pending = false, false
	return s
}

func (h *Healer) forget(id string, e *entry) {
	if e.timer != nil {
		e.timer.Stop()
	}
	if !e.state.InFlight {
		delete(h.state, id)
		h.o.States.Forget(id)
	}
}

// decision records a decision event with the policy's counters; h.mu is held.
func (h *Healer) decision(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy) events.Event {
	data := events.Data{Reason: d.Reason, Attempt: d.Attempt, FrameRestarts: d.FrameRestarts, BackoffStep: d.BackoffStep,
		Action: d.Action, DryRun: p.DryRun}
	if !d.FrameStart.IsZero() {
		fs := d.FrameStart.UTC()
		data.FrameStart = &fs
	}
	if !d.RetryAt.IsZero() {
		ra := d.RetryAt.UTC()
		data.RetryAt = &ra
	}
	ev := h.derived(k, cause, o, data, p)
	h.record(e, ev)
	return ev
}

// look inspects a container when a timer of ours fires, and decides on
// what it finds: no event will come to say that it needs healing.
func (h *Healer) look(id string, kind events.Kind, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	c, err := h.o.Docker.Inspect(ctx, id)
	cancel()
	if err != nil {
		h.o.Log.Debug("look: cannot inspect", "container_id", events.ShortID(id), "err", err)
		return
	}
	o := events.Observed{Kind: kind, ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Reconciled: true, Received: time.Now()}
	h.endPause(o, cause)
	if c.Running && !c.Paused && c.Health == "unhealthy" && kind != events.DockerDie {
		// Published as a listing's observation, the cause of what follows.
		o.Kind, o.DockerTime = events.DockerUnhealthy, c.HealthTime
		h.Handle(o)
		return
	}
	if !config.Selected(o.Labels, h.o.Label) || !config.InNamespace(o.Name, h.o.Namespace) {
		return
	}
	p := h.policy(o, cause)
	obs := Observation{Observed: o, Purpose: FromLook, Look: c}
	h.mu.Lock()
	e := h.entry(id)
	d := Decide(e.state, obs, p, h.o.Now())
	h.act(e, obs, cause, d, p)
	h.mu.Unlock()
}

func (h *Healer) policy(o events.Observed, cause string) config.Policy {
	p, errs := h.overrides.Policy(h.o.Policy, o.Labels)
	// Under all, a crash is healed only where asked for: a batch job that
	// exits non-zero is not ours to start again.
	if h.o.Label == "all" && !p.HealExitedSet && !config.Selected(o.Labels, config.DefaultLabel) {
		p.HealExited = false
	}
	if p.NotifyURL != "" && h.o.Routes != nil {
		h.o.Routes.Route(events.NotifyTargetID(p.NotifyURL), p.NotifyURL)
	}
	for _, e := range errs {
		key := o.ContainerID + "\x00" + e.Label + "\x00" + e.Value
		h.mu.Lock()
		_, seen := h.warned[key]
		h.warned[key] = struct{}{}
		h.mu.Unlock()
		if seen {
			continue
		}
		h.o.Log.Warn("invalid label value; using the default for this key", "container", o.Name, "label", e.Label, "value", e.Value, "expected", e.Expected)
		h.o.Publisher.Publish(h.derived(events.ConfigError, cause+"/"+e.Label, o, events.Data{
			Label: e.Label, Value: e.Value, Expected: e.Expected,
			Reason: "invalid label value; the default is used for this key",
		}, p))
	}
	return p
}

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
			e := h.entry(o.ContainerID)
			e.state.InFlight, e.state.Pending = false, false
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
	data := events.Data{Reason: req.Data.Reason, DurationMS: ms, Attempt: req.Data.Attempt, FrameRestarts: req.Data.FrameRestarts, Action: req.Data.Action,
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
		h.finish(o, h.derived(events.Stopped, cause, o, data, p))
		return
	}
	h.o.Log.Info("restarted", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "decided_in", decided,
		"attempt", req.Data.Attempt, "frame_restarts", req.Data.FrameRestarts)
	h.finish(o, h.derived(events.RestartSucceeded, cause, o, data, p))
	if p.RestartDependents {
		h.restartDependents(o, cause)
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
	h.record(e, h.derived(events.RestartFailed, cause, o, data, p))
	obs := Observation{Observed: o, Purpose: AfterFailure}
	h.act(e, obs, cause, Decide(e.state, obs, p, h.o.Now()), p)
}

// maxOutput bounds the probe output an event carries; maxLogTail its log
// lines.
const (
	maxOutput  = 512
	maxLogTail = 2048
)

// quoted is what a restart's message quotes of the container.
type quoted struct{ output, logTail string }

// quote reads, beside the restart, the output of the container's last
// failed probe (for an unhealthy one) and the last lines of its log (for
// an unhealthy or crashed one).
func (h *Healer) quote(o events.Observed, p config.Policy) <-chan quoted {
	ch := make(chan quoted, 1)
	probe := o.Kind == events.DockerUnhealthy
	logs := p.NotifyLogLines > 0 && (probe || o.Kind == events.DockerDie)
	if !probe && !logs {
		ch <- quoted{}
		return ch
	}
	go func() {
		var q quoted
		ctx, cancel := context.WithTimeout(h.ctx, 3*time.Second)
		defer cancel()
		if probe {
			q.output = h.failedProbe(ctx, o.ContainerID)
		}
		if logs {
			tail, err := h.o.Docker.LogTail(ctx, o.ContainerID, p.NotifyLogLines, maxLogTail)
			if err != nil {
				h.o.Log.Warn("cannot read the container's log for the message", "container", o.Name, "err", err)
			}
			q.logTail = tail
		}
		ch <- q
	}()
	return ch
}

// failedProbe reads the output of the container's last failed health probe,
// for the notification; the daemon keeps it across the restart.
func (h *Healer) failedProbe(ctx context.Context, id string) string {
	c, err := h.o.Docker.Inspect(ctx, id)
	if err != nil {
		h.o.Log.Debug("cannot read the failed probe's output", "container_id", events.ShortID(id), "err", err)
		return ""
	}
	out := strings.TrimSpace(c.FailedProbe)
	if len(out) > maxOutput {
		out = strings.ToValidUTF8(out[:maxOutput], "") + "…"
	}
	return out
}

func (h *Healer) finish(o events.Observed, outcome events.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	e.state.InFlight, e.state.Pending = false, false
	h.record(e, outcome)
}

// restartDependents restarts the selected containers that share the
// network of a container just restarted: without it they have none. Each
// is decided with its own state and policy.
func (h *Healer) restartDependents(parent events.Observed, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	deps, err := h.o.Docker.Dependents(ctx, parent.ContainerID, parent.Name)
	cancel()
	if err != nil {
		h.o.Log.Error("cannot list dependents; they may have lost their network", "container", parent.Name, "err", err)
		return
	}
	for _, c := range deps {
		if !config.Selected(c.Labels, h.o.Label) || !config.InNamespace(c.Name, h.o.Namespace) {
			h.o.Log.Warn("dependent not selected; left alone without network", "container", c.Name, "parent", parent.Name)
			continue
		}
		o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Received: time.Now()}
		dcause := cause + "/" + events.ShortID(c.ID)
		p := h.policy(o, dcause)
		if !p.RestartDependents {
			continue
		}
		obs := Observation{Observed: o, Purpose: AsDependent, Look: c, Parent: parent.Name}
		h.mu.Lock()
		e := h.entry(c.ID)
		d := Decide(e.state, obs, p, h.o.Now())
		var req events.Event
		send := d.Verdict == Restart && d.Action != config.ActionNotify
		if send {
			req = h.decision(e, events.RestartRequested, dcause, o, d, p)
			e.state.InFlight, e.state.Pending = true, true
		} else {
			h.act(e, obs, dcause, d, p)
		}
		h.mu.Unlock()
		if send {
			h.restart(o, dcause, req, p)
		}
	}
}

func (h *Healer) derived(k events.Kind, cause string, o events.Observed, d events.Data, p config.Policy) events.Event {
	d.Host, d.ContainerID, d.Container, d.Image, d.Cause = h.o.Host, o.ContainerID, o.Name, o.Image, cause
	if p.NotifyURL != "" {
		d.NotifyTarget = events.NotifyTargetID(p.NotifyURL)
	}
	d.NotifyLevel = p.NotifyLevel
	return events.New(k, events.DerivedID(cause, k), h.o.Now(), o.Name, d)
}

// Run waits for ctx to end, then for running restarts to finish.
func (h *Healer) Run(ctx context.Context) error {
	<-ctx.Done()
	h.mu.Lock()
	h.stopped = true
	for _, e := range h.state {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}
