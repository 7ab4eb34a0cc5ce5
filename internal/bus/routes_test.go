package bus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A route records its containers, and goes when none named it for a day.
func TestRoutesRecordContainersAndExpire(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := Open(ctx, Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, err := OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	r := NewRoutes(kv, slog.New(slog.DiscardHandler))
	r.now = func() time.Time { return now }
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
