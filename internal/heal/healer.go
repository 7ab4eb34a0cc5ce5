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
	"slices"
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
	// ComposeDependents lists the containers of parent's compose project
	// that depend on its service with restart: true.
	ComposeDependents(ctx context.Context, parent events.Container) ([]events.Container, error)
	// Recreate replaces id by a copy on container:<parentID>'s network,
	// started if start, and returns the copy's id; on an error the old
	// container is left as it was.
	// created is told the new id before the copy starts.
	Recreate(ctx context.Context, id, parentID string, start bool, created func(newID string)) (string, error)
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
	// name is the container's name when first seen, before a rename aside.
	name string
}

// goneParent is a removed container that dependents may still point at.
type goneParent struct {
	id     string
	diedAt time.Time
}

// maxGone bounds the memory of removed containers' names.
const maxGone = 1024

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
	// lastDie is the daemon time of the latest die of a selected
	// container: a die soon after it may be a dependent's dying with it.
	lastDie time.Time
	// gone maps the name of a removed selected container to it, so that a
	// new container under that name takes over its dependents.
	gone map[string]goneParent
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
		gone:      map[string]goneParent{},
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
		if o.Kind == events.DockerStart && !o.Replayed {
			// Its selected dependents are told why they are left alone.
			h.mu.Lock()
			h.spawnLocked(func() { h.dependentsOf(o, o.ID(h.o.Host), ParentStarted) })
			h.mu.Unlock()
		}
		return
	}
	ev := o.Event(h.o.Host)
	cause := ev.ID
	policy := h.policy(o, cause)
	now := h.o.Now()
	obs := Observation{Observed: o}

	h.mu.Lock()
	e := h.entry(o.ContainerID)
	if o.Kind == events.DockerDie {
		obs.ParentDiedRecently = !h.lastDie.IsZero() && o.DockerTime.Sub(h.lastDie) <= diedWithWindow
		h.lastDie = latest(h.lastDie, o.DockerTime)
	}
	if e.name == "" {
		e.name = originalName(o.Name)
	}
	d := Decide(e.state, obs, policy, now)
	h.record(e, ev)
	if o.Kind == events.DockerDestroy {
		h.forgetParent(e.name, o.ContainerID, e.state.DiedAt)
		h.forget(o.ContainerID, e)
		name := e.name
		// A container already created under its name (compose renames the
		// old one aside first) takes over its dependents now.
		h.spawnLocked(func() { h.reattachByName(name, o.ContainerID, cause) })
		h.mu.Unlock()
		return
	}
	if g, ok := h.gone[originalName(o.Name)]; ok && o.Kind == events.DockerStart && g.id != o.ContainerID {
		parent := events.Container{ID: o.ContainerID, Name: o.Name, Running: true}
		h.spawnLocked(func() { h.reattach(g, parent, cause) })
	}
	restart := h.act(e, obs, cause, d, policy)
	// A start that is not the healer's own restart (which sees to the
	// dependents itself) may find dependents that died with this one.
	parentStarted := o.Kind == events.DockerStart && !o.Replayed && !e.state.InFlight
	if parentStarted {
		h.spawnLocked(func() { h.dependentsOf(o, cause, ParentStarted) })
	}
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
		h.o.Log.Info("restart skipped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "retry_at", d.RetryAt, "parent", o.Parent)
		h.decisionFor(e, events.RestartSkipped, cause, o, d, p)
		if !d.RetryAt.IsZero() {
			if o.Purpose == AsDependent {
				// Owed: the look then finds it running and must know why.
				e.state.OwedParent = o.Parent
			}
			h.lookAt(e, o.Observed, cause, d.RetryAt)
		}
	case LookAgain:
		h.lookAt(e, o.Observed, cause, d.RetryAt)
	case GiveUp:
		h.o.Log.Warn("giving up on container", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "attempts", d.Attempt)
		e.state.OwedParent = ""
		h.decisionFor(e, events.GaveUp, cause, o, d, p)
	case Restart:
		req := h.decisionFor(e, events.RestartRequested, cause, o, d, p)
		if d.Action == config.ActionNotify {
			// Decided and told; nothing is sent to Docker.
			h.o.Log.Info("restart decided, not sent (action notify)", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "dry_run", p.DryRun)
			return false
		}
		e.state.InFlight, e.state.Pending, e.state.OwedParent = true, true, ""
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

// forgetParent remembers a removed container by name; h.mu is held.
func (h *Healer) forgetParent(name, id string, diedAt time.Time) {
	if len(h.gone) >= maxGone {
		for k := range h.gone {
			delete(h.gone, k)
			break
		}
	}
	h.gone[name] = goneParent{id: id, diedAt: diedAt}
}

// originalName is a container's name without the <12 hex>_ prefix that
// docker-compose v1 gives a container it renames aside to recreate it.
func originalName(name string) string {
	if len(name) > 13 && name[12] == '_' {
		for _, r := range name[:12] {
			if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
				return name
			}
		}
		return name[13:]
	}
	return name
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

// decisionFor is decision, naming the parent a dependent is decided for.
func (h *Healer) decisionFor(e *entry, k events.Kind, cause string, o Observation, d Decision, p config.Policy) events.Event {
	return h.decisionData(e, k, cause, o.Observed, d, p, events.Data{Parent: dependentParent(o)})
}

// dependentParent is the parent an observation decides a dependent for.
func dependentParent(o Observation) string {
	if o.Purpose != FromEvent {
		return o.Parent
	}
	return ""
}

// decision records a decision event with the policy's counters; h.mu is held.
func (h *Healer) decision(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy) events.Event {
	return h.decisionData(e, k, cause, o, d, p, events.Data{})
}

func (h *Healer) decisionData(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy, data events.Data) events.Event {
	data.Reason, data.Attempt, data.FrameRestarts, data.BackoffStep = d.Reason, d.Attempt, d.FrameRestarts, d.BackoffStep
	data.Action, data.DryRun = d.Action, p.DryRun
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
	var parentID string
	if ref, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok && !c.Running {
		pctx, pcancel := context.WithTimeout(h.ctx, 30*time.Second)
		pc, err := h.o.Docker.Inspect(pctx, ref)
		pcancel()
		if err == nil && config.Selected(pc.Labels, h.o.Label) && config.InNamespace(pc.Name, h.o.Namespace) {
			parentID, obs.Parent, obs.ParentRunning = pc.ID, pc.Name, pc.Running && !pc.Restarting
		}
	}
	h.mu.Lock()
	e := h.entry(id)
	if parentID != "" {
		if pe := h.state[parentID]; pe != nil {
			obs.ParentDiedAt = pe.state.DiedAt
			obs.ParentRunning = obs.ParentRunning && !pe.state.InFlight
		}
	}
	if obs.Parent == "" {
		obs.Parent = e.state.OwedParent
	}
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
		h.finish(o, h.derived(events.Stopped, cause, o, data, p))
		return
	}
	h.o.Log.Info("restarted", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "decided_in", decided,
		"attempt", req.Data.Attempt, "frame_restarts", req.Data.FrameRestarts)
	h.finish(o, h.derived(events.RestartSucceeded, cause, o, data, p))
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

// dependentsOf decides on the selected containers that share the network
// of a container just restarted by the healer (AsDependent: without it
// they have none) or started again by someone else (ParentStarted: those
// that died with it are started). Each is decided with its own state and
// policy, in turn, so a chain resolves in order.
func (h *Healer) dependentsOf(parent events.Observed, cause string, purpose Purpose) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	deps, err := h.o.Docker.Dependents(ctx, parent.ContainerID, parent.Name)
	var composed []events.Container
	if err == nil && purpose == AsDependent {
		composed, err = h.o.Docker.ComposeDependents(ctx, events.Container{ID: parent.ContainerID, Name: parent.Name, Labels: parent.Labels})
	}
	cancel()
	if err != nil {
		h.o.Log.Error("cannot list dependents; they may have lost their network", "container", parent.Name, "err", err)
		return
	}
	compose := map[string]bool{}
	for _, c := range composed {
		if !slices.ContainsFunc(deps, func(d events.Container) bool { return d.ID == c.ID }) {
			deps = append(deps, c)
			compose[c.ID] = true
		}
	}
	parentSelected := config.Selected(parent.Labels, h.o.Label) && config.InNamespace(parent.Name, h.o.Namespace)
	h.mu.Lock()
	var parentDied time.Time
	if pe := h.state[parent.ContainerID]; pe != nil {
		parentDied = pe.state.DiedAt
	}
	h.mu.Unlock()
	for _, c := range deps {
		if !config.Selected(c.Labels, h.o.Label) || !config.InNamespace(c.Name, h.o.Namespace) {
			h.o.Log.Warn("dependent not selected; left alone without network", "container", c.Name, "parent", parent.Name)
			continue
		}
		if purpose == ParentStarted && c.Running && parentSelected {
			// Its network survives a parent it did not die with only if
			// the healer restarts it; a start by someone else is theirs.
			continue
		}
		if !c.Running || purpose == ParentStarted {
			// The listing may be a second old: its death decides.
			ictx, icancel := context.WithTimeout(h.ctx, 30*time.Second)
			fresh, err := h.o.Docker.Inspect(ictx, c.ID)
			icancel()
			if err != nil {
				continue
			}
			c = fresh
		}
		o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Received: time.Now()}
		dcause := cause + "/" + events.ShortID(c.ID)
		p := h.policy(o, dcause)
		if !p.RestartDependents {
			continue
		}
		obs := Observation{Observed: o, Purpose: purpose, Look: c, Parent: parent.Name, ParentDiedAt: parentDied, ParentRunning: true, Compose: compose[c.ID],
			ParentNotSelected: !parentSelected}
		// Already acted on in this chain: it depends on itself.
		obs.Cycle = strings.Contains(cause+"/", "/"+events.ShortID(c.ID)+"/")
		h.mu.Lock()
		e := h.entry(c.ID)
		d := Decide(e.state, obs, p, h.o.Now())
		var req events.Event
		send := d.Verdict == Restart && d.Action != config.ActionNotify
		if send {
			req = h.decisionFor(e, events.RestartRequested, dcause, obs, d, p)
			e.state.InFlight, e.state.Pending, e.state.OwedParent = true, true, ""
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

// reattachByName looks for a container now under the name of a removed
// one, oldID, and moves its dependents onto it.
func (h *Healer) reattachByName(name, oldID, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	// Most removed containers have no dependents: the shared listing says
	// so without a call per container.
	if deps, err := h.o.Docker.Dependents(ctx, oldID, oldID); err != nil || len(deps) == 0 {
		return
	}
	c, err := h.o.Docker.Inspect(ctx, name)
	if err != nil || c.ID == oldID || !config.Selected(c.Labels, h.o.Label) {
		return
	}
	h.mu.Lock()
	g, ok := h.gone[name]
	h.mu.Unlock()
	if !ok || g.id != oldID {
		return
	}
	h.reattach(g, c, cause)
}

// reattach recreates the selected containers whose network is still
// container:<the removed one> on parent, the container now under its name.
// Each is decided with its own state and policy.
func (h *Healer) reattach(old goneParent, parent events.Container, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	deps, err := h.o.Docker.Dependents(ctx, old.id, old.id)
	cancel()
	if err != nil {
		h.o.Log.Error("cannot list the dependents of a recreated container; they may point at the removed one", "container", parent.Name, "err", err)
		return
	}
	for _, d := range deps {
		ictx, icancel := context.WithTimeout(h.ctx, 30*time.Second)
		c, err := h.o.Docker.Inspect(ictx, d.ID)
		icancel()
		if err != nil || c.NetworkMode != "container:"+old.id {
			// Removed or recreated meanwhile.
			continue
		}
		if !config.Selected(c.Labels, h.o.Label) || !config.InNamespace(c.Name, h.o.Namespace) {
			h.o.Log.Warn("dependent not selected; left pointing at its removed network parent", "container", c.Name, "parent", parent.Name)
			continue
		}
		h.recreate(c, old, parent, cause+"/"+events.ShortID(c.ID))
	}
}

// recreate decides on one dependent left behind by its recreated parent,
// and recreates it on the new one.
func (h *Healer) recreate(c events.Container, old goneParent, parent events.Container, cause string) {
	o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Received: time.Now()}
	p := h.policy(o, cause)
	obs := Observation{Observed: o, Purpose: ParentRecreated, Look: c, Parent: parent.Name, ParentDiedAt: old.diedAt, ParentRunning: parent.Running}
	h.mu.Lock()
	e := h.entry(c.ID)
	d := Decide(e.state, obs, p, h.o.Now())
	if d.Verdict != Recreate {
		h.act(e, obs, cause, d, p)
		h.mu.Unlock()
		return
	}
	h.decisionFor(e, events.RecreateRequested, cause, obs, d, p)
	e.state.InFlight = true
	h.mu.Unlock()

	h.o.Log.Info("recreating a dependent on its recreated network parent", "container", c.Name, "container_id", events.ShortID(c.ID), "parent", parent.Name, "start", d.Start)
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	started := time.Now()
	newID, err := h.o.Docker.Recreate(ctx, c.ID, parent.ID, d.Start && parent.Running, func(newID string) {
		// Its history goes on under its name: the budget carries over
		// before the copy's first event.
		h.mu.Lock()
		defer h.mu.Unlock()
		ne := h.entry(newID)
		ne.name = e.name
		carried := e.state
		ns := ne.state
		ns.LastRestart, ns.Attempt, ns.FrameStart, ns.FrameRestarts, ns.BackoffStep = carried.LastRestart, carried.Attempt, carried.FrameStart, carried.FrameRestarts, carried.BackoffStep
		ns.GaveUp, ns.LongestHealthy, ns.Ours, ns.RestartDone = carried.GaveUp, carried.LongestHealthy, false, carried.RestartDone
		ne.state = ns
	})
	cancel()
	data := events.Data{Reason: d.Reason, Parent: parent.Name, DurationMS: float64(time.Since(started).Microseconds()) / 1000}

	h.mu.Lock()
	defer h.mu.Unlock()
	e.state.InFlight = false
	if newID == "" {
		h.o.Log.Error("recreate failed; the dependent is left as it was", "container", c.Name, "parent", parent.Name, "err", err)
		data.Error = err.Error()
		h.record(e, h.derived(events.RecreateFailed, cause, o, data, p))
		return
	}
	if err != nil {
		h.o.Log.Warn("recreated, with a problem", "container", c.Name, "err", err)
		data.Error = err.Error()
	}
	data.NewContainerID = newID
	h.record(e, h.derived(events.Recreated, cause, o, data, p))
	if h.state[c.ID] == e {
		delete(h.state, c.ID)
	}
}
