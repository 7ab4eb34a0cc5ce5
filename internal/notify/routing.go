package notify

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Destination is where one container's events go: Target "" means the
// default targets, Level "" the target's own level.
type Destination struct {
	Target, Level string
}

// Routing knows, from the routes bucket, each container's destination.
// The healer records the routes from the containers' labels; the notifier
// looks each event's container up here, so nothing on the heal path knows
// of notification targets.
type Routing struct {
	mu sync.RWMutex
	// by holds, per container, the destinations the routes give it, by
	// route id; byRoute the containers each route holds.
	by      map[containerKey]map[string]seenDestination
	byRoute map[string][]containerKey

	ready     chan struct{}
	readyOnce sync.Once

	// latest reads the routes bucket's last revision, nil without a
	// bucket; applied is the last revision applied.
	latest  func(context.Context) (uint64, error)
	applied atomic.Uint64
}

// containerKey is a container as subjects name it: host "" is any host.
type containerKey struct{ host, container string }

type seenDestination struct {
	Destination
	seen int64
	// ids are the containers under this name that named the route; nil
	// (stored by an older healer) is any container so named.
	ids map[string]bool
}

// holds says whether the route was named by container id.
func (d seenDestination) holds(id string) bool { return d.ids == nil || d.ids[id] }

// NewRouting returns an empty table, not ready until Ready is called.
func NewRouting() *Routing {
	return &Routing{by: map[containerKey]map[string]seenDestination{}, byRoute: map[string][]containerKey{}, ready: make(chan struct{})}
}

// Ready marks the routes stored at start as all applied.
func (t *Routing) Ready() { t.readyOnce.Do(func() { close(t.ready) }) }

// Wait waits until Ready, or ctx ends (false): an event looked up before
// would go to the default targets though its container has its own.
func (t *Routing) Wait(ctx context.Context) bool {
	if t == nil {
		return true
	}
	select {
	case <-t.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Apply takes a route as stored now (or deleted) in place of what the
// table held for it.
func (t *Routing) Apply(rt Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt.Revision > t.applied.Load() {
		t.applied.Store(rt.Revision)
	}
	for _, k := range t.byRoute[rt.ID] {
		delete(t.by[k], rt.ID)
		if len(t.by[k]) == 0 {
			delete(t.by, k)
		}
	}
	delete(t.byRoute, rt.ID)
	if rt.Deleted {
		return
	}
	host := ""
	if rt.Host != "" {
		host = events.SanitizeToken(rt.Host)
	}
	target := rt.target()
	for _, c := range rt.Containers {
		k := containerKey{host, token(c)}
		if t.by[k] == nil {
			t.by[k] = map[string]seenDestination{}
		}
		var ids map[string]bool
		for _, id := range rt.IDs[c] {
			if ids == nil {
				ids = map[string]bool{}
			}
			ids[id] = true
		}
		d := seenDestination{Destination{Target: target, Level: rt.Levels[c]}, rt.Seen[c], ids}
		if prev, ok := t.by[k][rt.ID]; ok {
			// Another name of this route that subjects spell alike (x.y,
			// x_y): both names' containers are the route's, at the level
			// of the one seen last.
			d = merged(prev, d)
		} else {
			t.byRoute[rt.ID] = append(t.byRoute[rt.ID], k)
		}
		t.by[k][rt.ID] = d
	}
}

// merged is one destination for two names of a route under one key: the
// ids of both (any, if either takes any), the newer's level.
func merged(a, b seenDestination) seenDestination {
	if b.seen < a.seen {
		a, b = b, a
	}
	if a.ids == nil || b.ids == nil {
		b.ids = nil
		return b
	}
	ids := make(map[string]bool, len(a.ids)+len(b.ids))
	for id := range a.ids {
		ids[id] = true
	}
	for id := range b.ids {
		ids[id] = true
	}
	b.ids = ids
	return b
}

// catchUpBound bounds how long a group waits for routes on their way.
const catchUpBound = 2 * time.Second

// routeSettle is how long after an event was stored its route may still be
// on its way: the healer queues a container's route before it publishes the
// container's event, and the route is written a few milliseconds later (on
// a hub, sourced like the event). A group is looked up no sooner.
const routeSettle = time.Second

// CatchUp waits until the table holds every route stored by the time the
// group's newest event (stored at newest) had settled, at most
// catchUpBound past that: the route of a container reaches this table on
// its own way, maybe after the container's events. Without a bucket it
// returns at once.
func (t *Routing) CatchUp(ctx context.Context, newest time.Time) {
	if t == nil || t.latest == nil {
		return
	}
	if wait := time.Until(newest.Add(routeSettle)); wait > 0 && !sleep(ctx, min(wait, routeSettle)) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpBound)
	defer cancel()
	last, err := t.latest(ctx)
	if err != nil {
		return
	}
	for t.applied.Load() < last {
		if !sleep(ctx, 10*time.Millisecond) {
			return
		}
	}
}

// Lookup is the destination of the container named so on host, with id
// containerID: the route that saw it last, else the default targets at
// their level. A route is the container's only if it names its id: a
// container that took over a name gets none of the events of the one that
// had it (nor does its target), whatever the stream still holds of them.
func (t *Routing) Lookup(host, container, containerID string) Destination {
	if t == nil || container == "" {
		return Destination{}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	var best seenDestination
	bestID := ""
	c := token(container)
	for _, k := range []containerKey{{events.SanitizeToken(host), c}, {"", c}} {
		for id, d := range t.by[k] {
			if !d.holds(containerID) {
				continue
			}
			if bestID == "" || d.seen > best.seen || d.seen == best.seen && id < bestID {
				best, bestID = d, id
			}
		}
	}
	return best.Destination
}

func token(container string) string { return events.SanitizeToken(strings.TrimPrefix(container, "/")) }
