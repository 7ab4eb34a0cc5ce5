package bus

import (
	"context"
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
			Bucket:      RoutesBucket,
			Description: "HealMyDocker: notify URLs from container labels, by target id",
			Storage:     jetstream.FileStorage,
			History:     1,
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

// Routes stores the notify URLs the healer finds in labels. Route never
// blocks: the healer calls it on its event path, and the store may be slow
// or down; a route that could not be stored is tried again when it is seen
// again.
type Routes struct {
	kv   jetstream.KeyValue
	open func(context.Context) (jetstream.KeyValue, error)
	log  *slog.Logger

	mu     sync.Mutex
	stored map[string]string
	queue  chan [2]string
}

// NewRoutes returns the writer of the routes bucket; Run must be running.
func NewRoutes(kv jetstream.KeyValue, log *slog.Logger) *Routes {
	return &Routes{kv: kv, log: log, stored: map[string]string{}, queue: make(chan [2]string, 256)}
}

// NewRoutesOpening is NewRoutes with the bucket opened at the first
// route stored: the store may be down when the healer starts.
func NewRoutesOpening(open func(context.Context) (jetstream.KeyValue, error), log *slog.Logger) *Routes {
	r := NewRoutes(nil, log)
	r.open = open
	return r
}

// Route records that target id has this URL.
func (r *Routes) Route(id, url string) {
	r.mu.Lock()
	known := r.stored[id] == url
	if !known {
		// Marked now so a burst of events queues it once; unmarked if
		// storing fails.
		r.stored[id] = url
	}
	r.mu.Unlock()
	if known {
		return
	}
	select {
	case r.queue <- [2]string{id, url}:
	default:
		r.forget(id)
		r.log.Warn("notify route not stored: queue full; it is tried again when the container's next event comes", "target", id)
	}
}

func (r *Routes) forget(id string) {
	r.mu.Lock()
	delete(r.stored, id)
	r.mu.Unlock()
}

// Run stores queued routes until ctx ends.
func (r *Routes) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case q := <-r.queue:
			if err := r.store(ctx, q[0], q[1]); err != nil {
				r.forget(q[0])
				r.log.Warn("notify route not stored; it is tried again when the container's next event comes", "target", q[0], "err", err)
			}
		}
	}
}

func (r *Routes) store(ctx context.Context, id, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r.kv == nil {
		kv, err := r.open(ctx)
		if err != nil {
			return fmt.Errorf("open routes: %w", err)
		}
		r.kv = kv
	}
	e, err := r.kv.Get(ctx, id)
	if err == nil && string(e.Value()) == url {
		return nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("read route %s: %w", id, err)
	}
	if _, err := r.kv.Put(ctx, id, []byte(url)); err != nil {
		return fmt.Errorf("store route %s: %w", id, err)
	}
	return nil
}
