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

// RoutesBucket maps a notify target's id to its URL, for the URLs found in
// containers' labels. It is a key-value bucket, not part of the events
// stream, because URLs may hold tokens that subscribers must not read.
const RoutesBucket = "HMD_NOTIFY_ROUTES"

// RoutesBucketOf returns the routes bucket as it is, creating it only if it
// is missing: on a hub it sources every host's bucket, and writing its
// configuration again would drop those sources.
func RoutesBucketOf(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, RoutesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       RoutesBucket,
			Description:  "HealMyDocker: notify URLs from container labels, by target id",
			Storage:      jetstream.FileStorage,
			History:      1,
			MaxBytes:     RoutesMaxBytes,
			MaxValueSize: 64 << 10,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, RoutesBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RoutesBucket, err)
	}
	return kv, nil
}

// RoutesMaxBytes bounds the routes bucket on disk: one URL per target.
const RoutesMaxBytes = 16 << 20

// OpenRoutesBucket creates the bucket if it is missing and returns it.
func OpenRoutesBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       RoutesBucket,
		Description:  "HealMyDocker: notify URLs from container labels, by target id",
		Storage:      jetstream.FileStorage,
		History:      1,
		MaxBytes:     RoutesMaxBytes,
		MaxValueSize: 64 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RoutesBucket, err)
	}
	return kv, nil
}

// RoutesBucket keeps the routes bucket with the bus's other streams: made
// again when the store comes back. With the store degraded it waits.
func (b *Bus) RoutesBucket(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := b.addStream(ctx, streamSpec{name: "KV_" + RoutesBucket, ensure: func(ctx context.Context) error {
		var err error
		kv, err = OpenRoutesBucket(ctx, b.js)
		return err
	}})
	if err == nil {
		return kv, nil
	}
	if err := b.WaitUp(ctx); err != nil {
		return nil, err
	}
	return OpenRoutesBucket(ctx, b.js)
}

// RouteIdle is how long a route stays after the last container that named
// it was seen doing so.
const RouteIdle = 24 * time.Hour

// routeRefresh is how often a container still naming a route is written
// down again.
const routeRefresh = time.Hour

// RouteValue is what the bucket holds for a target.
type RouteValue struct {
	URL string `json:"url"`
	// Containers maps the names of the containers that name the target to
	// when one was last seen doing so (unix seconds).
	Containers map[string]int64 `json:"containers,omitempty"`
}

// ParseRouteValue reads a bucket value; a bare URL is the older form.
func ParseRouteValue(b []byte) RouteValue {
	var v RouteValue
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &v) == nil {
		return v
	}
	return RouteValue{URL: string(b)}
}

// Routes stores the notify URLs the healer finds in labels, with the
// containers that name them. Use never blocks: the healer calls it on its
// event path, and the store may be slow or down; a route that could not be
// stored is tried again when it is seen again.
type Routes struct {
	kv   jetstream.KeyValue
	open func(context.Context) (jetstream.KeyValue, error)
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	routes map[string]RouteValue
	queue  chan string
}

// NewRoutes returns the writer of the routes bucket; Run must be running.
func NewRoutes(kv jetstream.KeyValue, log *slog.Logger) *Routes {
	return &Routes{kv: kv, log: log, now: time.Now, routes: map[string]RouteValue{}, queue: make(chan string, 256)}
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

// Route is kept for the healer's interface: routes are recorded with their
// container by Use, which sees every event first.
func (r *Routes) Route(id, url string) {}

// Use records that container names target id with this URL.
func (r *Routes) Use(id, url, container string) {
	now := r.now().Unix()
	r.mu.Lock()
	v, ok := r.routes[id]
	changed := !ok || v.URL != url || now-v.Containers[container] >= int64(routeRefresh/time.Second)
	if changed {
		if v.URL != url {
			v = RouteValue{URL: url}
		}
		c := make(map[string]int64, len(v.Containers)+1)
		for k, t := range v.Containers {
			c[k] = t
		}
		c[container] = now
		v.Containers = c
		r.routes[id] = v
	}
	r.mu.Unlock()
	if !changed {
		return
	}
	select {
	case r.queue <- id:
	default:
		r.forget(id, container)
		r.log.Warn("notify route not stored: queue full; it is tried again when the container's next event comes", "target", id)
	}
}

// forget unmarks container so that its next event stores the route again.
func (r *Routes) forget(id, container string) {
	r.mu.Lock()
	if v, ok := r.routes[id]; ok {
		c := make(map[string]int64, len(v.Containers))
		for k, t := range v.Containers {
			if k != container {
				c[k] = t
			}
		}
		v.Containers = c
		r.routes[id] = v
	}
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
	v := r.routes[id]
	r.mu.Unlock()
	e, err := kv.Get(ctx, id)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("read route %s: %w", id, err)
	}
	merged := RouteValue{URL: v.URL, Containers: map[string]int64{}}
	if err == nil {
		if old := ParseRouteValue(e.Value()); old.URL == v.URL {
			for k, t := range old.Containers {
				merged.Containers[k] = t
			}
		}
	}
	for k, t := range v.Containers {
		merged.Containers[k] = max(merged.Containers[k], t)
	}
	b, _ := json.Marshal(merged)
	if err == nil && bytes.Equal(e.Value(), b) {
		return nil
	}
	if _, err := kv.Put(ctx, id, b); err != nil {
		return fmt.Errorf("store route %s: %w", id, err)
	}
	return nil
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
	for _, id := range keys {
		e, err := kv.Get(ctx, id)
		if err != nil {
			continue
		}
		v := ParseRouteValue(e.Value())
		if v.Containers == nil {
			// The older form says nothing of its containers: it is
			// rewritten when a container names it, else it goes.
			v.Containers = map[string]int64{}
		}
		kept := map[string]int64{}
		for k, t := range v.Containers {
			if t >= cutoff {
				kept[k] = t
			}
		}
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
		case len(kept) < len(v.Containers):
			v.Containers = kept
			b, _ := json.Marshal(v)
			_, _ = kv.Update(ctx, id, b, e.Revision())
		}
	}
}
