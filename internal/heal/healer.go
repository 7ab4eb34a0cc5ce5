// Package heal owns the healing loop: it takes observations, decides with
// the pure Decide over each container's event history, restarts containers
// concurrently within a bound, and publishes every observation, decision and
// outcome. Its memory is the history, which a restarted healer gets back.
package heal

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// Docker is what the healer needs of the engine.
type Docker interface {
	Restart(ctx context.Context, id string, stopTimeout time.Duration) error
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
	// Initial is the history per container id, oldest first, as stored.
	Initial map[string][]events.Event
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
	// Routes is told of the notify URLs in containers' labels, so that
	// notifiers can serve them; nil drops them.
	Routes Routes
}

// Routes makes a container's own notify URL known to the notifiers. It
// must not block: the event stream waits on the healer.
type Routes interface {
	Route(id, url string)
}

// entry is the healer's memory of one container.
type entry struct {
	history  []events.Event
	inFlight bool
	retry    *time.Timer
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
	if o.DecisionLatency == nil {
		o.DecisionLatency = func(time.Duration) {}
	}
	if o.Restarted == nil {
		o.Restarted = func(string, error) {}
	}
	if o.History == nil {
		o.History = discard{}
	}
	h := &Healer{
		o:         o,
		sem:       make(chan struct{}, max(o.MaxConcurrent, 1)),
		ctx:       context.Background(),
		state:     map[string]*entry{},
		warned:    map[string]struct{}{},
		overrides: config.NewOverrides(o.Label),
	}
	for id, hist := range o.Initial {
		h.state[id] = &entry{history: hist}
	}
	return h
}

type discard struct{}

func (discard) Publish(events.Event) {}

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

	h.mu.Lock()
	e := h.entry(o.ContainerID)
	d := Decide(e.history, Container{InFlight: e.inFlight}, o, policy, now)
	h.record(e, ev, policy)
	if o.Kind == events.DockerDestroy {
		h.forget(o.ContainerID, e)
	}
	var req events.Event
	if d.Verdict == Restart && o.Kind != events.DockerDie {
		e.inFlight = true
		req = h.decision(e, events.RestartRequested, cause, o, d, policy)
	}
	h.mu.Unlock()

	h.o.Log.Debug("observed", "container", o.Name, "event", o.Kind, "reconciled", o.Reconciled, "replayed", o.Replayed, "verdict", d.Verdict)
	switch d.Verdict {
	case Ignore:
	case Skip:
		if o.Kind == events.DockerDie && d.Reason != ReasonReplayed {
			// Decided again once the events of the stop, if any, are in.
			h.spawn(func() { h.healExited(o, cause, policy) })
			return
		}
		h.skip(o, cause, d, policy)
	case GiveUp:
		h.o.Log.Warn("giving up on container", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "attempts", d.Attempt)
		h.mu.Lock()
		h.decision(h.entry(o.ContainerID), events.GaveUp, cause, o, d, policy)
		h.mu.Unlock()
	case Restart:
		if o.Kind == events.DockerDie {
			// Whether its own restart policy brings it back takes a look,
			// which must not hold up the event stream.
			h.spawn(func() { h.healExited(o, cause, policy) })
			return
		}
		if !h.spawn(func() { h.restart(o, cause, req, policy) }) {
			h.finish(o, h.derived(events.RestartFailed, cause, o, events.Data{Reason: req.Data.Reason, Error: "healer stopping"}, policy), policy)
			return
		}
		// Hand this processor to the restart, which is next in line for it,
		// so its request goes out before the next event is read: in a storm
		// the other processors are busy, and it would wait behind the burst.
		runtime.Gosched()
	}
}

// spawn runs f in its own goroutine unless the healer is stopping, and
// reports whether it did; Run waits for what it spawned.
func (h *Healer) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
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

// record publishes ev and, if the policy reads it, appends it to the
// container's history; h.mu is held.
func (h *Healer) record(e *entry, ev events.Event, p config.Policy) {
	h.o.Publisher.Publish(ev)
	if !InHistory(ev.Kind()) {
		return
	}
	e.history = append(e.history, ev)
	if n := len(e.history) - max(p.MaxHistoricEntries, 1); n > 0 {
		e.history = append(e.history[:0:0], e.history[n:]...)
	}
	h.o.History.Publish(ev)
}

func (h *Healer) forget(id string, e *entry) {
	if e.retry != nil {
		e.retry.Stop()
	}
	if !e.inFlight {
		delete(h.state, id)
	}
}

// decision records a decision event with the policy's counters; h.mu is held.
func (h *Healer) decision(e *entry, k events.Kind, cause string, o events.Observed, d Decision, p config.Policy) events.Event {
	data := events.Data{Reason: d.Reason, Attempt: d.Attempt, FrameRestarts: d.FrameRestarts, BackoffStep: d.BackoffStep}
	if !d.FrameStart.IsZero() {
		fs := d.FrameStart.UTC()
		data.FrameStart = &fs
	}
	if !d.RetryAt.IsZero() {
		ra := d.RetryAt.UTC()
		data.RetryAt = &ra
	}
	ev := h.derived(k, cause, o, data, p)
	h.record(e, ev, p)
	return ev
}

func (h *Healer) skip(o events.Observed, cause string, d Decision, p config.Policy) {
	h.o.Log.Info("restart skipped", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", d.Reason, "retry_at", d.RetryAt)
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	h.decision(e, events.RestartSkipped, cause, o, d, p)
	if d.RetryAt.IsZero() || h.stopped {
		return
	}
	if e.retry != nil {
		e.retry.Stop()
	}
	id := o.ContainerID
	e.retry = time.AfterFunc(d.RetryAt.Sub(h.o.Now()), func() { h.recheck(id) })
}

// recheck looks at a container whose restart was held back, and heals it
// if it still needs it: no event will come to say so.
func (h *Healer) recheck(id string) {
	h.spawn(func() { h.look(id) })
}

func (h *Healer) look(id string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	c, err := h.o.Docker.Inspect(ctx, id)
	if err != nil {
		h.o.Log.Debug("recheck: container gone", "container_id", events.ShortID(id), "err", err)
		return
	}
	o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Reconciled: true, Received: time.Now()}
	switch {
	case c.Running && c.Health == "unhealthy":
		o.Kind, o.DockerTime = events.DockerUnhealthy, c.HealthTime
	case !c.Running && !c.RestartsItself:
		code := c.ExitCode
		o.Kind, o.ExitCode, o.DockerTime = events.DockerDie, &code, time.Now()
	default:
		return
	}
	h.Handle(o)
}

func (h *Healer) policy(o events.Observed, cause string) config.Policy {
	p, errs := h.overrides.Policy(h.o.Policy, o.Labels)
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

// exitSettle is how long a death waits for the events of a stop that
// caused it: the daemon logs kill after it signals, so a process that exits
// at once can die before its kill event arrives.
const exitSettle = 300 * time.Millisecond

// healExited starts a container that died, unless a user stopped it, it is
// back already, or its own restart policy brings it back.
func (h *Healer) healExited(o events.Observed, cause string, p config.Policy) {
	time.Sleep(exitSettle)
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	c, err := h.o.Docker.Inspect(ctx, o.ContainerID)
	cancel()
	reason := ""
	switch {
	case err != nil:
		reason = "cannot inspect: " + err.Error()
	case c.Running:
		reason = ReasonRunningAgain
	case c.RestartsItself:
		reason = ReasonOwnPolicy
	}
	h.mu.Lock()
	e := h.entry(o.ContainerID)
	var req events.Event
	// Decided again: the history now has the stop's kill, if there was one.
	d := Decide(e.history, Container{InFlight: e.inFlight}, o, p, h.o.Now())
	if reason == "" && d.Verdict == Restart {
		e.inFlight = true
		req = h.decision(e, events.RestartRequested, cause, o, d, p)
	}
	h.mu.Unlock()
	switch {
	case d.Verdict == Skip:
		h.skip(o, cause, d, p)
	case d.Verdict != Restart:
	case reason != "":
		h.skip(o, cause, Decision{Verdict: Skip, Reason: reason}, p)
	default:
		h.restart(o, cause, req, p)
	}
}

func (h *Healer) restart(o events.Observed, cause string, req events.Event, p config.Policy) {
	h.sem <- struct{}{}
	decided := time.Since(o.Received)
	h.o.DecisionLatency(decided)
	started := time.Now()
	err := h.o.Docker.Restart(h.ctx, o.ContainerID, p.StopTimeout)
	took := time.Since(started)
	// Released before the dependents, which take slots of their own.
	<-h.sem
	h.o.Restarted(o.Name, err)
	ms := float64(took.Microseconds()) / 1000
	data := events.Data{Reason: req.Data.Reason, DurationMS: ms, Attempt: req.Data.Attempt, FrameRestarts: req.Data.FrameRestarts}
	if err != nil {
		h.o.Log.Error("restart failed", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "err", err)
		data.Error = err.Error()
		h.finish(o, h.derived(events.RestartFailed, cause, o, data, p), p)
		return
	}
	if h.o.Healed != nil && !o.DockerTime.IsZero() {
		h.o.Healed(time.Since(o.DockerTime))
	}
	if o.Kind == events.DockerUnhealthy {
		data.Output = h.failedProbe(o.ContainerID)
	}
	h.o.Log.Info("restarted", "container", o.Name, "container_id", events.ShortID(o.ContainerID), "reason", req.Data.Reason, "took", took, "decided_in", decided,
		"attempt", req.Data.Attempt, "frame_restarts", req.Data.FrameRestarts)
	h.finish(o, h.derived(events.RestartSucceeded, cause, o, data, p), p)
	if p.RestartDependents {
		h.restartDependents(o, cause)
	}
}

// maxOutput bounds the probe output an event carries.
const maxOutput = 512

// failedProbe reads the output of the container's last failed health probe,
// for the notification; the daemon keeps it across the restart.
func (h *Healer) failedProbe(id string) string {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
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

func (h *Healer) finish(o events.Observed, outcome events.Event, p config.Policy) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(o.ContainerID)
	e.inFlight = false
	h.record(e, outcome, p)
}

// restartDependents restarts the selected containers that share the
// network of a container just restarted: without it they have none.
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
		p := h.policy(o, cause)
		if !p.RestartDependents {
			continue
		}
		h.mu.Lock()
		e := h.entry(c.ID)
		if e.inFlight {
			h.mu.Unlock()
			continue
		}
		e.inFlight = true
		req := h.decision(e, events.RestartRequested, cause+"/"+events.ShortID(c.ID), o, Decision{Verdict: Restart, Reason: ReasonDependent + " " + parent.Name}, p)
		h.mu.Unlock()
		dcause := cause + "/" + events.ShortID(c.ID)
		h.restart(o, dcause, req, p)
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
		if e.retry != nil {
			e.retry.Stop()
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}
