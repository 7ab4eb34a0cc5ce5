package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RoutesBucket maps a notify target's id to its URL and the containers
// that name it (with their notify_level), for the URLs found in
// containers' labels; DefaultTargetsKey holds the containers that set only
// a notify_level. It is a key-value bucket, not part of the events
// stream, because URLs may hold tokens that subscribers must not read.
const RoutesBucket = "HMD_NOTIFY_ROUTES"

// RoutesBucketOf returns the routes bucket as it is, creating it only if it
// is missing: on a hub it sources every host's bucket, and writing its
// configuration again would drop those sources.
func RoutesBucketOf(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, RoutesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, routesBucketConfig())
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

// routesBucketConfig is the routes bucket's configuration, the same
// whether it is created or updated.
func routesBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       RoutesBucket,
		Description:  "HealMyDocker: notify URLs from container labels, by target id",
		Storage:      jetstream.FileStorage,
		History:      1,
		MaxBytes:     RoutesMaxBytes,
		MaxValueSize: routeValueMax,
	}
}

// routeValueMax bounds one route's stored value: a few hundred containers.
const routeValueMax = 64 << 10

// OpenRoutesBucket creates the bucket if it is missing and returns it.
func OpenRoutesBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, routesBucketConfig())
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

// DefaultTargetsKey holds the containers that name no target of their own
// but a notify_level: the default targets tell them at that level. It has
// no URL, so no notifier runs a target for it.
const DefaultTargetsKey = "default-targets"

// RouteValue is what the bucket holds for a target.
type RouteValue struct {
	URL string `json:"url"`
	// Containers maps the names of the containers that name the target to
	// when one was last seen doing so (unix seconds).
	Containers map[string]int64 `json:"containers,omitempty"`
	// Levels maps the containers with a notify_level label to it: they are
	// told at that level instead of the target's.
	Levels map[string]string `json:"levels,omitempty"`
	// IDs maps the ids of the containers that named the target to their
	// name and when last seen doing so: notifiers route an event by its
	// container's id, so a container that takes a name another had (that
	// one removed, or recreated with other labels) gets none of the other's
	// events.
	IDs map[string]RouteID `json:"ids,omitempty"`
}

// RouteID is a container that named a route: its name then, and when it
// was last seen doing so (unix seconds).
type RouteID struct {
	Name string `json:"name"`
	Seen int64  `json:"seen"`
}

// maxIDsPerName bounds the ids a route keeps per container name: a
// container recreated keeps its older ids a while (their last events may
// still be on their way), not without end.
const maxIDsPerName = 4

// prune drops from v the ids of names it no longer holds, and all but
// the newest maxIDsPerName of each name's.
func prune(v RouteValue) RouteValue {
	byName := map[string][]string{}
	for id, c := range v.IDs {
		if _, ok := v.Containers[c.Name]; !ok {
			delete(v.IDs, id)
			continue
		}
		byName[c.Name] = append(byName[c.Name], id)
	}
	for _, ids := range byName {
		if len(ids) <= maxIDsPerName {
			continue
		}
		// Newest first; the same second, by id, so each store keeps the same.
		slices.SortFunc(ids, func(a, b string) int {
			if d := v.IDs[b].Seen - v.IDs[a].Seen; d != 0 {
				return int(max(min(d, 1), -1))
			}
			return strings.Compare(a, b)
		})
		for _, id := range ids[maxIDsPerName:] {
			delete(v.IDs, id)
		}
	}
	if len(v.IDs) == 0 {
		v.IDs = nil
	}
	return v
}

// fit drops from v the containers seen longest ago until its value is at
// most limit bytes, and returns it with how many it dropped: a route named
// by more containers than a value holds keeps those seen last, whose events
// are the ones still coming, rather than failing to store at all.
func fit(v RouteValue, limit int) (RouteValue, []byte, int) {
	b, _ := json.Marshal(v)
	dropped := 0
	for len(b) > limit && len(v.Containers) > 0 {
		names := make([]string, 0, len(v.Containers))
		for c := range v.Containers {
			names = append(names, c)
		}
		// Oldest first; the same second, by name, so each store drops the same.
		slices.SortFunc(names, func(a, b string) int {
			if d := v.Containers[a] - v.Containers[b]; d != 0 {
				return int(max(min(d, 1), -1))
			}
			return strings.Compare(a, b)
		})
		// A share of the excess at a time, at least one.
		n := max(1, len(names)*(len(b)-limit)/len(b)+1)
		for _, c := range names[:min(n, len(names))] {
			delete(v.Containers, c)
			delete(v.Levels, c)
			dropped++
		}
		v = prune(v)
		b, _ = json.Marshal(v)
	}
	return v, b, dropped
}

// ParseRouteValue reads a bucket value; a bare URL is the older form.
func ParseRouteValue(b []byte) RouteValue {
	var v RouteValue
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &v) == nil {
		return v
	}
	return RouteValue{URL: string(b)}
}
