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

	"github.com/cenkalti/backoff/v5"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// Sink receives observations. The stream's goroutine calls it, and so do,
// beside it, the reconcile listings (up to 8 inspections at once each) and
// the inspections that resolve a death's exit code. Calls overlap: a sink
// must be safe for concurrent use, and may see a container's observations
// out of order (a resolved die after the container's next start). It must
// not block: the daemon drops a consumer that stalls for 100 ms.
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
	_, _ = backoff.Retry(ctx, func() (struct{}, error) {
		began := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return struct{}{}, backoff.Permanent(ctx.Err())
		}
		w.status.DockerLost(err)
		if time.Since(began) > time.Minute {
			// A session that lasted: the next failure starts over.
			bo.Reset()
		}
		return struct{}{}, cmp.Or(err, errSessionEnded)
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, wait time.Duration) {
		w.log.Warn("docker connection lost; reconnecting", "err", err, "host", w.c.Host(), "retry_in", wait)
	}))
	return nil
}

// errSessionEnded is a session's end without an error of its own: it is
// reconnected all the same.
var errSessionEnded = errors.New("the event stream ended")

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
