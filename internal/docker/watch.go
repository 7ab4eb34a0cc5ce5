package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unique"

	"github.com/cenkalti/backoff/v5"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// Sink receives observations. It is called from the stream's goroutine and
// must not block: the daemon drops a consumer that stalls for 100 ms.
type Sink func(hmd.Observed)

// Status is told when the connection to the daemon is made or lost.
type Status interface {
	DockerConnected(Info)
	DockerLost(error)
}

// Watcher streams container events from the daemon, reconnecting for ever.
type Watcher struct {
	c         *Client
	sink      Sink
	status    Status
	log       *slog.Logger
	pingEvery time.Duration
	// reconcileEvery is how often unhealthy containers are listed to
	// catch events the daemon dropped; 0 turns it off.
	reconcileEvery time.Duration

	// unhealthy holds the containers whose latest health seen is
	// unhealthy: the periodic reconcile reports only the others.
	mu        sync.Mutex
	unhealthy map[string]bool

	// selects says which containers the healer watches, by labels and
	// name, so a reconnect inspects only those of the exited; nil is all.
	selects func(labels map[string]string, name string) bool

	// last is the daemon time of the newest event seen; seen holds the
	// events of the last replayWindow before it. The daemon stamps events
	// before it sends them, so they can arrive slightly out of time order:
	// duplicates are recognised by key, never by time.
	last   int64
	seen   map[string]int64
	pruned int64

	// collides says, per container seen start, create or turn healthy or
	// unhealthy, whether it has a label named exitCode or signal.
	collides map[string]bool
	// ctx and bg run the inspections that resolve such attributes.
	ctx context.Context
	bg  sync.WaitGroup
}

// replayWindow is how far before the newest event seen a reconnect asks
// the daemon to resend, to catch events that were stamped earlier but not
// yet sent when the stream broke.
const replayWindow = 5 * time.Second

// NewWatcher returns a watcher that feeds sink and reports to status.
func NewWatcher(c *Client, sink Sink, status Status, pingEvery time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{c: c, sink: sink, status: status, log: log, pingEvery: pingEvery, seen: map[string]int64{}, unhealthy: map[string]bool{}, collides: map[string]bool{}, ctx: context.Background()}
}

// ReconcileEvery sets how often unhealthy containers are listed to catch
// events the daemon dropped (it drops them for a consumer that falls
// behind); 0 turns it off.
func (w *Watcher) ReconcileEvery(d time.Duration) { w.reconcileEvery = d }

// Selects narrows the exited containers a reconnect looks at to those f
// accepts.
func (w *Watcher) Selects(f func(labels map[string]string, name string) bool) { w.selects = f }

// interesting are the actions the healer and cleaner use; the rest (exec_*
// from every health probe above all) would only cost bandwidth.
var interesting = []string{"health_status", "start", "die", "kill", "stop", "oom", "destroy", "create", "rename", "restart"}

// Run watches until ctx ends. Every connection is one job: connect,
// subscribe, reconcile, stream. Any error ends the job, and it runs again
// after a capped backoff that resets after a long healthy run.
func (w *Watcher) Run(ctx context.Context) error {
	w.ctx = ctx
	defer w.bg.Wait()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 200 * time.Millisecond
	// A failed dial to a daemon that is gone costs next to nothing, and a
	// daemon that is back should be healing within a second or so.
	bo.MaxInterval = time.Second
	bo.RandomizationFactor = 0.2
	for {
		began := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.status.DockerLost(err)
		if time.Since(began) > time.Minute {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		w.log.Warn("docker connection lost; reconnecting", "err", err, "host", w.c.Host(), "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (w *Watcher) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	// Cancel first, then wait: a reconcile stuck in a hung call must be
	// cut off, not waited for, or the session never ends.
	defer func() { cancel(); running.Wait() }()
	info, err := w.c.Connect(ctx)
	if err != nil {
		return err
	}
	opts := client.EventsListOptions{Filters: client.Filters{}.Add("type", "container").Add("event", interesting...)}
	lastSeen := w.last
	if lastSeen != 0 {
		since := lastSeen - int64(replayWindow)
		opts.Since = fmt.Sprintf("%d.%09d", since/1e9, since%1e9)
	}
	// Events older than this were sent again because of since.
	subscribed := time.Now().Add(info.Skew).UnixNano()
	stream, err := w.subscribe(ctx, cancel, opts)
	if err != nil {
		return err
	}
	ping := time.NewTicker(w.pingEvery)
	defer ping.Stop()
	var recon <-chan time.Time
	if w.reconcileEvery > 0 {
		t := time.NewTicker(w.reconcileEvery)
		defer t.Stop()
		recon = t.C
	}
	// The reconcile runs beside the stream, which must be read on: the
	// daemon drops events for a consumer that stops for 100 ms, and a
	// thousand inspections take longer.
	recErr := make(chan error, 1)
	running.Go(func() { recErr <- w.reconcile(ctx, lastSeen, subscribed) })
	busy := false
	done := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stream.Err:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return fmt.Errorf("docker event stream: %w", err)
		case m := <-stream.Messages:
			w.handle(m, subscribed)
		case err := <-recErr:
			if err != nil {
				return fmt.Errorf("reconcile: %w", err)
			}
			// Connected means caught up with the daemon's state: a daemon
			// that answers pings but hangs on lists is not, and must not
			// flap readiness (and notifications) at every try.
			w.status.DockerConnected(info)
		case <-recon:
			// Off the stream's goroutine: listing must not hold up reading.
			if !busy {
				busy = true
				running.Go(func() { done <- w.reconcileMissed(ctx) })
			}
		case err := <-done:
			busy = false
			if err != nil && ctx.Err() == nil {
				if isHang(err) {
					// A daemon that answers pings but hangs on lists heals
					// nothing it did not send an event for: say so.
					return fmt.Errorf("periodic reconcile: %w", err)
				}
				w.log.Warn("periodic reconcile failed; the event stream still runs", "err", err)
			}
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, w.pingEvery)
			err := w.c.Ping(pctx)
			pcancel()
			if err != nil {
				return err
			}
		}
	}
}

// subscribe opens the event stream. The client waits for the daemon's
// answer before it returns, so a daemon that never answers is cut off after
// the short-call deadline by cancel, which ends the session's context.
func (w *Watcher) subscribe(ctx context.Context, cancel context.CancelFunc, opts client.EventsListOptions) (client.EventsResult, error) {
	got := make(chan client.EventsResult, 1)
	go func() { got <- w.c.api.Events(ctx, opts) }()
	t := time.NewTimer(w.c.timeout)
	defer t.Stop()
	select {
	case res := <-got:
		return res, nil
	case <-t.C:
		cancel()
		return client.EventsResult{}, fmt.Errorf("subscribe to docker events: no answer within %s", w.c.timeout)
	case <-ctx.Done():
		return client.EventsResult{}, ctx.Err()
	}
}

func (w *Watcher) handle(m events.Message, subscribed int64) {
	received := time.Now()
	t := m.TimeNano
	if t == 0 {
		t = m.Time * 1e9
	}
	key := m.Actor.ID + "/" + string(m.Action) + "/" + strconv.FormatInt(t, 10)
	if _, dup := w.seen[key]; dup {
		return
	}
	w.seen[key] = t
	if t > w.last {
		w.last = t
		// Pruned keys are older than any since= a reconnect will use.
		if t-w.pruned > int64(time.Second) {
			w.prune()
			w.pruned = t
		}
	}
	o, ok := Convert(m)
	if !ok {
		return
	}
	o.Received = received
	o.Replayed = t < subscribed
	if o.Kind == hmd.DockerCreate || o.Kind == hmd.DockerDestroy {
		// Before the sink sees it: whoever asks next finds the container.
		w.c.dropDependents()
	}
	w.mu.Lock()
	switch o.Kind {
	case hmd.DockerUnhealthy:
		w.unhealthy[o.ContainerID] = true
	case hmd.DockerHealthy, hmd.DockerStart, hmd.DockerDestroy:
		delete(w.unhealthy, o.ContainerID)
	}
	w.mu.Unlock()
	if w.ambiguous(&o) {
		w.resolve(o)
		return
	}
	w.sink(o)
}

// ambiguous learns which containers have labels named like the attributes
// of die and kill, and reports whether o's attributes cannot be trusted:
// the container has such a label, or it was never seen start, so it is not
// known not to. A kill's signal is then unknown (inspect does not keep it).
func (w *Watcher) ambiguous(o *hmd.Observed) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch o.Kind {
	case hmd.DockerDestroy:
		delete(w.collides, o.ContainerID)
		return false
	case hmd.DockerDie, hmd.DockerKill:
		collides, known := w.collides[o.ContainerID]
		if known && !collides {
			return false
		}
		if o.Kind == hmd.DockerKill {
			o.Signal, o.AmbiguousAttrs = "", []string{"signal"}
			return false
		}
		o.AmbiguousAttrs = []string{"exitCode"}
		return true
	default:
		w.collides[o.ContainerID] = len(o.AmbiguousAttrs) > 0
		return false
	}
}

// resolve reads a death's exit code from inspect, off the stream's
// goroutine, then hands the observation on.
func (w *Watcher) resolve(o hmd.Observed) {
	w.bg.Go(func() {
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		defer cancel()
		c, err := w.c.Inspect(ctx, o.ContainerID)
		if err != nil {
			// Gone already: no exit code is better than a label's.
			w.log.Debug("die: inspect for the exit code failed", "container_id", hmd.ShortID(o.ContainerID), "err", err)
			o.ExitCode = nil
		} else {
			code := c.ExitCode
			o.ExitCode = &code
		}
		w.sink(o)
	})
}

func (w *Watcher) prune() {
	for k, t := range w.seen {
		if t < w.last-int64(replayWindow) {
			delete(w.seen, k)
		}
	}
}

// intern returns one shared copy of s: what the healer keeps of each event
// (its container's name and image) repeats event after event, and images
// across containers.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// Convert turns a daemon event into an observation; ok is false for
// events the healer does not publish.
func Convert(m events.Message) (hmd.Observed, bool) {
	if m.Type != events.ContainerEventType {
		return hmd.Observed{}, false
	}
	var k hmd.Kind
	switch m.Action {
	case events.ActionHealthStatusUnhealthy:
		k = hmd.DockerUnhealthy
	case events.ActionHealthStatusHealthy:
		k = hmd.DockerHealthy
	case events.ActionStart:
		k = hmd.DockerStart
	case events.ActionDie:
		k = hmd.DockerDie
	case events.ActionKill:
		k = hmd.DockerKill
	case events.ActionStop:
		k = hmd.DockerStop
	case events.ActionOOM:
		k = hmd.DockerOOM
	case events.ActionDestroy:
		k = hmd.DockerDestroy
	case events.ActionCreate:
		k = hmd.DockerCreate
	case events.ActionRename:
		k = hmd.DockerRename
	default:
		return hmd.Observed{}, false
	}
	t := m.TimeNano
	if t == 0 {
		t = m.Time * 1e9
	}
	attrs := m.Actor.Attributes
	o := hmd.Observed{
		Kind:        k,
		ContainerID: m.Actor.ID,
		Name:        intern(attrs["name"]),
		Image:       intern(attrs["image"]),
		DockerTime:  time.Unix(0, t),
		Labels:      make(map[string]string, len(attrs)),
	}
	// The daemon sets name and image after copying the labels, so those are
	// its own; exitCode and signal it sets before, so a label of that name
	// wins. Seen on an event that does not carry them, they are labels.
	if k == hmd.DockerDie {
		if s, ok := attrs["exitCode"]; ok {
			if code, err := strconv.Atoi(s); err == nil {
				o.ExitCode = &code
			}
		}
	} else if _, ok := attrs["exitCode"]; ok {
		o.AmbiguousAttrs = append(o.AmbiguousAttrs, "exitCode")
	}
	if k == hmd.DockerKill {
		o.Signal = attrs["signal"]
	} else if _, ok := attrs["signal"]; ok {
		o.AmbiguousAttrs = append(o.AmbiguousAttrs, "signal")
	}
	// The daemon mixes its own attributes into the container's labels.
	for key, v := range attrs {
		switch key {
		case "name", "image", "exitCode", "signal", "execDuration", "oldName":
		default:
			o.Labels[key] = v
		}
	}
	return o, true
}

// reconcile reports containers that are unhealthy now: no event will say so
// again, whether they turned unhealthy before the healer started or while it
// was disconnected. After a reconnect (lastSeen, the daemon time of the
// newest event seen, is set) it also reports the containers that exited
// between lastSeen and subscribed: the daemon may have lost their die
// events (it restarted) or sends them again only as replays, which the
// healer does not act on.
func (w *Watcher) reconcile(ctx context.Context, lastSeen, subscribed int64) error {
	if err := w.reconcileIf(ctx, false); err != nil {
		return err
	}
	if lastSeen == 0 {
		return nil
	}
	return w.reconcileExited(ctx, lastSeen, subscribed)
}

func (w *Watcher) reconcileExited(ctx context.Context, lastSeen, subscribed int64) error {
	list, err := w.c.listExited(ctx, w.selects)
	if err != nil {
		return err
	}
	for _, c := range list {
		// After subscribed, the stream itself has its die event.
		if f := c.Finished.UnixNano(); c.Finished.IsZero() || f <= lastSeen || f >= subscribed {
			continue
		}
		code := c.ExitCode
		w.log.Info("found a container that exited while the docker connection was down", "container", c.Name, "container_id", hmd.ShortID(c.ID), "exit_code", code, "finished", c.Finished)
		w.sink(hmd.Observed{
			Kind:        hmd.DockerDie,
			ContainerID: c.ID,
			Name:        c.Name,
			Image:       c.Image,
			Labels:      c.Labels,
			ExitCode:    &code,
			DockerTime:  c.Finished,
			Received:    time.Now(),
			Reconciled:  true,
		})
	}
	return ctx.Err()
}

// reconcileMissed reports the unhealthy containers whose unhealthy event
// never came: the daemon dropped it.
func (w *Watcher) reconcileMissed(ctx context.Context) error { return w.reconcileIf(ctx, true) }

func (w *Watcher) reconcileIf(ctx context.Context, onlyMissed bool) error {
	ids, err := w.c.listUnhealthy(ctx)
	if err != nil {
		return err
	}
	var todo []string
	for _, id := range ids {
		w.mu.Lock()
		known := w.unhealthy[id]
		w.unhealthy[id] = true
		w.mu.Unlock()
		if onlyMissed && known {
			continue
		}
		if onlyMissed {
			w.log.Warn("found an unhealthy container whose event never came (the daemon drops events for a busy consumer); healing it", "container_id", hmd.ShortID(id))
		}
		todo = append(todo, id)
	}
	// A few inspections at once: a storm found at start is healed in
	// parallel, as one seen live would be.
	work := make(chan string)
	var wg sync.WaitGroup
	var hungMu sync.Mutex
	var hung error
	for range min(8, len(todo)) {
		wg.Go(func() {
			for id := range work {
				if err := w.inspectUnhealthy(ctx, id); err != nil {
					hungMu.Lock()
					hung = cmp.Or(hung, err)
					hungMu.Unlock()
				}
			}
		})
	}
	for _, id := range todo {
		work <- id
	}
	close(work)
	wg.Wait()
	if hung != nil {
		return hung
	}
	return ctx.Err()
}

// inspectUnhealthy reports id if it is still unhealthy. It returns an error
// only when the daemon hangs: a container removed meanwhile is no fault.
func (w *Watcher) inspectUnhealthy(ctx context.Context, id string) error {
	ct, err := w.c.Inspect(ctx, id)
	if err != nil {
		if isHang(err) && ctx.Err() == nil {
			return err
		}
		// Removed between list and inspect: nothing to heal.
		w.log.Debug("reconcile: inspect failed; skipping container", "container_id", hmd.ShortID(id), "err", err)
		return nil
	}
	if !ct.Running || ct.Health != "unhealthy" {
		return nil
	}
	w.sink(hmd.Observed{
		Kind:        hmd.DockerUnhealthy,
		ContainerID: ct.ID,
		Name:        ct.Name,
		Image:       ct.Image,
		Labels:      ct.Labels,
		DockerTime:  ct.HealthTime,
		Received:    time.Now(),
		Reconciled:  true,
	})
	return nil
}
