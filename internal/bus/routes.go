package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Routes stores, for each container with a notify_url or notify_level
// label, its target and level, keyed by target: notifiers route each event
// by them. Record never blocks: it is called on the healer's event path,
// and the store may be slow or down; a route that could not be stored is
// tried again when it is seen again.
type Routes struct {
	kv   jetstream.KeyValue
	open func(context.Context) (jetstream.KeyValue, error)
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	routes map[string]RouteValue
	// where is the key each container was last recorded under, and drops
	// the containers a key's next store removes: they moved elsewhere.
	where map[string]string
	drops map[string]map[string]bool
	queue chan string
}

// NewRoutes returns the writer of the routes bucket; Run must be running.
func NewRoutes(kv jetstream.KeyValue, log *slog.Logger) *Routes {
	return &Routes{kv: kv, log: log, now: time.Now, routes: map[string]RouteValue{}, where: map[string]string{},
		drops: map[string]map[string]bool{}, queue: make(chan string, 256)}
}

// NewRoutesOpening is NewRoutes with the bucket opened at the first
// route stored: the store may be down when the healer starts.
func NewRoutesOpening(open func(context.Context) (jetstream.KeyValue, error), log *slog.Logger) *Routes {
	r := NewRoutes(nil, log)
	r.open = open
	return r
}

// bucket is the routes bucket, opened at first use.
func (r *Routes) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	if r.kv == nil {
		if r.open == nil {
			return nil, errors.New("routes: no bucket")
		}
		kv, err := r.open(ctx)
		if err != nil {
			return nil, fmt.Errorf("open routes: %w", err)
		}
		r.kv = kv
	}
	return r.kv, nil
}

// Use records that container names target id with this URL.
func (r *Routes) Use(id, url, container string) { r.Record(container, "", id, url, "") }

// Record records where the events of container (named so, with id
// containerID) go: target id (with its URL), at level; id and url empty
// mean the default targets, which need a record only for a level. A
// container recorded elsewhere before is taken off that record.
func (r *Routes) Record(container, containerID, id, url, level string) {
	key := id
	if url == "" {
		key = ""
		if level != "" {
			key = DefaultTargetsKey
		}
	}
	now := r.now().Unix()
	var queue []string
	r.mu.Lock()
	if old, ok := r.where[container]; ok && old != key {
		if v, ok := r.routes[old]; ok {
			r.routes[old] = without(v, container)
		}
		if r.drops[old] == nil {
			r.drops[old] = map[string]bool{}
		}
		r.drops[old][container] = true
		delete(r.where, container)
		queue = append(queue, old)
	}
	if key != "" {
		v, ok := r.routes[key]
		newID := containerID != "" && v.IDs[containerID].Name != container
		if !ok || newID || v.URL != url || v.Levels[container] != level || now-v.Containers[container] >= int64(routeRefresh/time.Second) {
			if v.URL != url {
				v = RouteValue{URL: url}
			}
			v = without(v, container)
			v.Containers[container] = now
			if level != "" {
				v.Levels[container] = level
			}
			if containerID != "" {
				v.IDs[containerID] = RouteID{Name: container, Seen: now}
			}
			r.routes[key] = v
			r.where[container] = key
			delete(r.drops[key], container)
			queue = append(queue, key)
		}
	}
	r.mu.Unlock()
	for _, k := range queue {
		select {
		case r.queue <- k:
		default:
			r.forget(k, container)
			r.log.Warn("notify route not stored: queue full; it is tried again when the container's next event comes", "target", k)
		}
	}
}

// without is a copy of v without container's name and level; its ids
// stay, for prune to take once the name is gone.
func without(v RouteValue, container string) RouteValue {
	c := make(map[string]int64, len(v.Containers)+1)
	for k, t := range v.Containers {
		if k != container {
			c[k] = t
		}
	}
	l := make(map[string]string, len(v.Levels)+1)
	for k, s := range v.Levels {
		if k != container {
			l[k] = s
		}
	}
	ids := make(map[string]RouteID, len(v.IDs)+1)
	for k, id := range v.IDs {
		ids[k] = id
	}
	v.Containers, v.Levels, v.IDs = c, l, ids
	return v
}

// forget unmarks container so that its next event stores the route again.
func (r *Routes) forget(id, container string) {
	r.mu.Lock()
	if v, ok := r.routes[id]; ok {
		r.routes[id] = without(v, container)
	}
	delete(r.where, container)
	r.mu.Unlock()
}

// Run stores queued routes, and removes idle ones hourly, until ctx ends.
func (r *Routes) Run(ctx context.Context) error {
	sweep := time.NewTicker(routeRefresh)
	defer sweep.Stop()
	// No sweep at start: after a long stop every route would look idle
	// before the containers naming it are seen again.
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			r.Sweep(ctx)
		case id := <-r.queue:
			if err := r.store(ctx, id); err != nil {
				r.mu.Lock()
				delete(r.routes, id)
				r.mu.Unlock()
				r.log.Warn("notify route not stored; it is tried again when the container's next event comes", "target", id, "err", err)
			}
		}
	}
}

func (r *Routes) store(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	v, known := r.routes[id]
	drops := r.drops[id]
	delete(r.drops, id)
	r.mu.Unlock()
	e, err := kv.Get(ctx, id)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("read route %s: %w", id, err)
	}
	merged := RouteValue{URL: v.URL, Containers: map[string]int64{}, Levels: map[string]string{}, IDs: map[string]RouteID{}}
	if err == nil {
		if old := ParseRouteValue(e.Value()); old.URL == v.URL || !known {
			merged.URL = old.URL
			for k, t := range old.Containers {
				merged.Containers[k] = t
			}
			for k, l := range old.Levels {
				merged.Levels[k] = l
			}
			for k, id := range old.IDs {
				merged.IDs[k] = id
			}
		}
	}
	for k := range drops {
		delete(merged.Containers, k)
		delete(merged.Levels, k)
	}
	for k, t := range v.Containers {
		merged.Containers[k] = max(merged.Containers[k], t)
		delete(merged.Levels, k)
		if l := v.Levels[k]; l != "" {
			merged.Levels[k] = l
		}
	}
	for k, id := range v.IDs {
		if id.Seen >= merged.IDs[k].Seen {
			merged.IDs[k] = id
		}
	}
	merged = prune(merged)
	remove := func() error {
		if err == nil {
			if derr := kv.Delete(ctx, id, jetstream.LastRevision(e.Revision())); derr != nil {
				return fmt.Errorf("remove route %s: %w", id, derr)
			}
		}
		return nil
	}
	if len(merged.Containers) == 0 {
		// Every container that named it moved elsewhere.
		return remove()
	}
	if len(merged.Levels) == 0 {
		merged.Levels = nil
	}
	merged, b, dropped := fit(merged, routeValueMax)
	if dropped > 0 {
		r.log.Warn("notify route too large to store whole; the containers seen naming it longest ago are dropped from it, and their events go to the default targets",
			"target", id, "dropped", dropped, "kept", len(merged.Containers))
		r.mu.Lock()
		// Forgotten here too: seen again, a container is recorded again.
		if mem, ok := r.routes[id]; ok {
			mem = without(mem, "") // a copy: the maps are changed below
			for c := range mem.Containers {
				if _, kept := merged.Containers[c]; !kept {
					delete(mem.Containers, c)
					delete(mem.Levels, c)
					if r.where[c] == id {
						delete(r.where, c)
					}
				}
			}
			r.routes[id] = prune(mem)
		}
		r.mu.Unlock()
	}
	if len(merged.Containers) == 0 {
		// Its URL alone fills a value: stored with no container it would
		// be the older form, whose consumer reads every container's events.
		return remove()
	}
	if err == nil && bytes.Equal(e.Value(), b) {
		return nil
	}
	if _, err := kv.Put(ctx, id, b); err != nil {
		return fmt.Errorf("store route %s: %w", id, err)
	}
	return nil
}

// forgetIdle drops from memory the containers not seen since cutoff, as
// the sweep drops them from the bucket: else the next store of their
// route would write them back, and a healer watching containers come and
// go would hold every name it ever saw.
func (r *Routes) forgetIdle(cutoff int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, v := range r.routes {
		v = without(v, "") // a copy: the maps are changed below
		for c, t := range v.Containers {
			if t < cutoff {
				delete(v.Containers, c)
				delete(v.Levels, c)
				if r.where[c] == key {
					delete(r.where, c)
				}
			}
		}
		for id, c := range v.IDs {
			if c.Seen < cutoff {
				delete(v.IDs, id)
			}
		}
		if len(v.Containers) == 0 {
			delete(r.routes, key)
			continue
		}
		r.routes[key] = prune(v)
	}
}

// Sweep drops the containers not seen naming a route for RouteIdle, and
// deletes a route none names any more: its notifier consumer goes with it.
func (r *Routes) Sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := r.bucket(ctx)
	if err != nil {
		r.log.Warn("notify routes: the bucket is not open; idle ones stay until the next sweep", "err", err)
		return
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		if !errors.Is(err, jetstream.ErrNoKeysFound) {
			r.log.Warn("notify routes: cannot list them; idle ones stay until the next sweep", "err", err)
		}
		return
	}
	cutoff := r.now().Add(-RouteIdle).Unix()
	r.forgetIdle(cutoff)
	for _, id := range keys {
		e, err := kv.Get(ctx, id)
		if err != nil {
			continue
		}
		v := ParseRouteValue(e.Value())
		ids := len(v.IDs)
		if v.Containers == nil {
			// The older form says nothing of its containers: it is
			// rewritten when a container names it, else it goes.
			v.Containers = map[string]int64{}
		}
		before := len(v.Containers)
		kept := map[string]int64{}
		for k, t := range v.Containers {
			if t >= cutoff {
				kept[k] = t
			}
		}
		for k := range v.Levels {
			if _, ok := kept[k]; !ok {
				delete(v.Levels, k)
			}
		}
		for k, id := range v.IDs {
			if id.Seen < cutoff {
				delete(v.IDs, k)
			}
		}
		v.Containers = kept
		v = prune(v)
		r.mu.Lock()
		if len(kept) == 0 {
			delete(r.routes, id)
		}
		r.mu.Unlock()
		switch {
		case len(kept) == 0:
			if err := kv.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err == nil {
				r.log.Info("notify route removed: no container named it for a day", "target", id)
			}
		case len(kept) < before || len(v.IDs) < ids:
			b, _ := json.Marshal(v)
			_, _ = kv.Update(ctx, id, b, e.Revision())
		}
	}
}
