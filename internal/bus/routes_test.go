package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// testRoutes is a Routes on the routes bucket of a fresh bus, its clock
// reading *now for the test to move, and drain, which stores what it has
// queued.
func testRoutes(t *testing.T, now *time.Time) (context.Context, jetstream.KeyValue, *Routes, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := Open(ctx, Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the bus closes before ctx ends.
	t.Cleanup(func() { _ = b.Close() })
	kv, err := OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	r := NewRoutes(kv, slog.New(slog.DiscardHandler))
	r.now = func() time.Time { return *now }
	drain := func() {
		t.Helper()
		for len(r.queue) > 0 {
			if err := r.store(ctx, <-r.queue); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ctx, kv, r, drain
}

// A route records its containers, and goes when none named it for a day.
func TestRoutesRecordContainersAndExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, _ := testRoutes(t, &now)
	r.Use("notify-a", "https://a.example/x", "web")
	r.Use("notify-a", "https://a.example/x", "api")
	for range 2 {
		if err := r.store(ctx, <-r.queue); err != nil {
			t.Fatal(err)
		}
	}
	e, err := kv.Get(ctx, "notify-a")
	if err != nil {
		t.Fatal(err)
	}
	v := ParseRouteValue(e.Value())
	if v.URL != "https://a.example/x" || len(v.Containers) != 2 {
		t.Fatalf("stored %+v", v)
	}
	// web is seen again 20 hours on; api is not.
	now = now.Add(20 * time.Hour)
	r.Use("notify-a", "https://a.example/x", "web")
	if err := r.store(ctx, <-r.queue); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Hour)
	r.Sweep(ctx)
	e, _ = kv.Get(ctx, "notify-a")
	if v := ParseRouteValue(e.Value()); len(v.Containers) != 1 || v.Containers["web"] == 0 {
		t.Errorf("after api's day: %+v", v)
	}
	now = now.Add(20 * time.Hour)
	r.Sweep(ctx)
	if _, err := kv.Get(ctx, "notify-a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("a route no container named for a day is still there: %v", err)
	}
	// The older form, a bare URL, is read.
	if v := ParseRouteValue([]byte("gotify://g.example/t")); v.URL != "gotify://g.example/t" || v.Containers != nil {
		t.Errorf("bare URL: %+v", v)
	}
}

// A container's level is stored with its target, or under the default
// targets' key when it names no target; one that moves is taken off the
// record it left, which goes once no container is on it.
func TestRoutesRecordLevelsAndMoves(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, drain := testRoutes(t, &now)
	get := func(key string) (RouteValue, bool) {
		t.Helper()
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return RouteValue{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return ParseRouteValue(e.Value()), true
	}
	r.Record("web", "web-1", "notify-a", "https://a.example/x", "debug")
	r.Record("api", "api-1", "", "", "warning")
	r.Record("db", "db-1", "", "", "")
	drain()
	if v, _ := get("notify-a"); v.URL != "https://a.example/x" || v.Containers["web"] == 0 || v.Levels["web"] != "debug" || len(v.Levels) != 1 {
		t.Errorf("notify-a: %+v", v)
	}
	if v, _ := get(DefaultTargetsKey); v.URL != "" || v.Containers["api"] == 0 || len(v.Containers) != 1 || v.Levels["api"] != "warning" {
		t.Errorf("%s: %+v", DefaultTargetsKey, v)
	}
	// web's level goes; api moves to a target of its own.
	now = now.Add(time.Minute)
	r.Record("web", "web-1", "notify-a", "https://a.example/x", "")
	r.Record("api", "api-1", "notify-b", "https://b.example/y", "info")
	drain()
	if v, _ := get("notify-a"); v.Containers["web"] == 0 || len(v.Levels) != 0 {
		t.Errorf("notify-a after web's level went: %+v", v)
	}
	if v, _ := get("notify-b"); v.Containers["api"] == 0 || v.Levels["api"] != "info" {
		t.Errorf("notify-b: %+v", v)
	}
	if v, ok := get(DefaultTargetsKey); ok {
		t.Errorf("%s stays with no container on it: %+v", DefaultTargetsKey, v)
	}
	// web's labels lose their target: it is taken off.
	r.Record("web", "web-1", "", "", "")
	drain()
	if v, ok := get("notify-a"); ok {
		t.Errorf("notify-a stays with no container on it: %+v", v)
	}
}

// A route records the ids of the containers that named it, so that a
// notifier routes by the container and not by a name another may take:
// a container recreated keeps its older ids for a while (its last events
// are still on their way), at most maxIDsPerName of them; one that moves
// takes its ids along off the record; ids go after a day unseen.
func TestRoutesRecordContainerIDs(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, drain := testRoutes(t, &now)
	ids := func(key string) map[string]RouteID {
		t.Helper()
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return ParseRouteValue(e.Value()).IDs
	}
	for _, c := range []struct {
		name       string
		record     func()
		key        string
		want       []string
		wantAbsent []string
	}{
		{"the container's id", func() { r.Record("web", "web-1", "notify-a", "https://a.example/x", "") }, "notify-a", []string{"web-1"}, nil},
		{"recreated with the same labels: both", func() { r.Record("web", "web-2", "notify-a", "https://a.example/x", "") }, "notify-a", []string{"web-1", "web-2"}, nil},
		{"recreated often: the newest only", func() {
			for i := 3; i <= 3+maxIDsPerName; i++ {
				now = now.Add(time.Second)
				r.Record("web", fmt.Sprintf("web-%d", i), "notify-a", "https://a.example/x", "")
			}
		}, "notify-a", []string{fmt.Sprintf("web-%d", 3+maxIDsPerName)}, []string{"web-1", "web-2", "web-3"}},
		{"another container beside it", func() { r.Record("api", "api-1", "notify-a", "https://a.example/x", "") }, "notify-a", []string{"api-1"}, nil},
		{"recreated with another target: its ids leave", func() { r.Record("web", "web-9", "notify-b", "https://b.example/y", "") }, "notify-a", []string{"api-1"}, []string{"web-4", fmt.Sprintf("web-%d", 3+maxIDsPerName)}},
		{"the other target has the new one", func() {}, "notify-b", []string{"web-9"}, nil},
	} {
		c.record()
		drain()
		got := ids(c.key)
		for _, id := range c.want {
			if got[id].Seen == 0 {
				t.Errorf("%s: %s lacks %s: %v", c.name, c.key, id, got)
			}
		}
		for _, id := range c.wantAbsent {
			if _, ok := got[id]; ok {
				t.Errorf("%s: %s still has %s: %v", c.name, c.key, id, got)
			}
		}
		if len(got) > 2*maxIDsPerName {
			t.Errorf("%s: %s holds %d ids", c.name, c.key, len(got))
		}
	}
	// api is seen again a day on; its id stays, web's older ones on
	// notify-b went with web.
	now = now.Add(20 * time.Hour)
	r.Record("api", "api-1", "notify-a", "https://a.example/x", "")
	drain()
	now = now.Add(5 * time.Hour)
	r.Sweep(ctx)
	if got := ids("notify-a"); len(got) != 1 || got["api-1"].Seen == 0 {
		t.Errorf("after a day: %v", got)
	}
}

// A sweep forgets idle containers in memory too: the next store of the
// route must not write them back, and a healer seeing containers come and
// go (compose runs, a hostile churn) must not hold every name for ever.
func TestRoutesSweepForgetsIdleContainers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, drain := testRoutes(t, &now)
	for i := range 50 {
		r.Record(fmt.Sprintf("run-%d", i), fmt.Sprintf("id-%d", i), "notify-a", "https://a.example/x", "")
		r.Record(fmt.Sprintf("lvl-%d", i), fmt.Sprintf("lid-%d", i), "", "", "debug")
	}
	drain()
	now = now.Add(RouteIdle + time.Hour)
	r.Record("web", "web-1", "notify-a", "https://a.example/x", "")
	r.Record("api", "api-1", "", "", "debug")
	drain()
	r.Sweep(ctx)
	r.Record("db", "db-1", "notify-a", "https://a.example/x", "")
	r.Record("cache", "cache-1", "", "", "warning")
	drain()
	for key, want := range map[string]int{"notify-a": 2, DefaultTargetsKey: 2} {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if v := ParseRouteValue(e.Value()); len(v.Containers) != want || len(v.IDs) != want {
			t.Errorf("%s after the sweep and a store: %d containers, %d ids, want %d: %+v", key, len(v.Containers), len(v.IDs), want, v)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.where); n != 4 {
		t.Errorf("the healer remembers %d containers, want the 4 seen within a day", n)
	}
	for key, v := range r.routes {
		if len(v.Containers) > 2 || len(v.IDs) > 2 {
			t.Errorf("%s in memory: %d containers, %d ids", key, len(v.Containers), len(v.IDs))
		}
	}
}

// A route named by more containers than one value holds keeps those seen
// last and drops the rest, instead of failing to store: the bucket refuses
// a value over routeValueMax.
func TestRoutesKeepTheNewestContainersOfAFullRoute(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, drain := testRoutes(t, &now)
	const n = 700
	name := func(i int) string { return fmt.Sprintf("ci-job-%04d-with-a-long-generated-name-%032d", i, i) }
	for i := range n {
		now = now.Add(time.Second)
		r.Record(name(i), fmt.Sprintf("%064d", i), "", "", "debug")
		drain()
	}
	e, err := kv.Get(ctx, DefaultTargetsKey)
	if err != nil {
		t.Fatalf("the full route was not stored: %v", err)
	}
	v := ParseRouteValue(e.Value())
	if len(e.Value()) > routeValueMax || len(v.Containers) == 0 || len(v.Containers) == n {
		t.Fatalf("stored %d bytes, %d containers of %d", len(e.Value()), len(v.Containers), n)
	}
	for i := n - len(v.Containers); i < n; i++ {
		if v.Levels[name(i)] != "debug" || v.IDs[fmt.Sprintf("%064d", i)].Name != name(i) {
			t.Fatalf("the %d newest are not all kept: %s is missing (%d kept)", len(v.Containers), name(i), len(v.Containers))
		}
	}
	// One dropped and seen again is recorded again, as the newest.
	old := name(0)
	now = now.Add(time.Second)
	r.Record(old, fmt.Sprintf("%064d", 0), "", "", "info")
	drain()
	e, _ = kv.Get(ctx, DefaultTargetsKey)
	if v := ParseRouteValue(e.Value()); v.Levels[old] != "info" {
		t.Errorf("%s, seen again, is not in the route", old)
	}
}

// A URL so long that no container fits beside it in one value (a label
// can be that long) is not stored with none: a route that names no
// container is the older form, whose consumer reads every container's
// events.
func TestRoutesDoNotStoreAURLWithoutItsContainers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx, kv, r, drain := testRoutes(t, &now)
	url := "https://chat.example/hooks/" + strings.Repeat("a", routeValueMax-64)
	r.Record("web", "cid-web", "notify-long", url, "")
	drain()
	e, err := kv.Get(ctx, "notify-long")
	if err == nil {
		t.Errorf("stored a route that names no container: %d bytes, %d containers", len(e.Value()), len(ParseRouteValue(e.Value()).Containers))
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
}
