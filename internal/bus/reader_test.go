package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The reader user reads live events and the stream's history, and is
// refused a publish into the stream, a delete, and the notify routes.
func TestReaderMayOnlyRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	b, err := Open(ctx, Options{DataDir: t.TempDir(), Listen: addr, User: "healer", Password: "hp", ReaderUser: "reader", ReaderPassword: "rp", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, err := OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "notify-x", []byte("https://chat.example/hooks/secret")); err != nil {
		t.Fatal(err)
	}
	old := events.New(events.RestartSucceeded, "old", time.Now(), "web", events.Data{Host: "h"})
	data, _ := events.Marshal(old)
	if _, err := b.JetStream().Publish(ctx, old.NATSSubject(), data); err != nil {
		t.Fatal(err)
	}

	perms := make(chan error, 10)
	rc, err := nats.Connect("nats://"+addr, nats.UserInfo("reader", "rp"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perms <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rjs, err := jetstream.New(rc)
	if err != nil {
		t.Fatal(err)
	}

	// History, through an ordered consumer.
	c, err := rjs.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("reader cannot make a consumer: %v", err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || m.Subject() != old.NATSSubject() {
		t.Fatalf("reader cannot replay the stream: %v", err)
	}

	// Live events.
	sub, err := rc.SubscribeSync("hmd.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	live := events.New(events.RestartSucceeded, "live", time.Now(), "web", events.Data{Host: "h"})
	data, _ = events.Marshal(live)
	if _, err := b.JetStream().Publish(ctx, live.NATSSubject(), data); err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.NextMsg(5 * time.Second); err != nil || msg.Subject != live.NATSSubject() {
		t.Fatalf("reader does not get live events: %v", err)
	}

	// Refused: publishing into the stream, deleting or purging it, and the routes.
	if err := rc.Publish("hmd.h._.decision.restart_requested", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = rc.Flush()
	select {
	case err := <-perms:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("publish: got %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the reader's publish into the stream was not refused")
	}
	// A refused request gets no answer: each waits a short while.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if err := rjs.DeleteStream(short(), EventsStream); err == nil {
		t.Error("the reader deleted the stream")
	}
	if s, err := rjs.Stream(short(), EventsStream); err != nil {
		t.Errorf("reader cannot look at the stream: %v", err)
	} else if err := s.Purge(short()); err == nil {
		t.Error("the reader purged the stream")
	}
	if rkv, err := rjs.KeyValue(short(), RoutesBucket); err == nil {
		if e, err := rkv.Get(short(), "notify-x"); err == nil {
			t.Errorf("the reader read a notify route: %s", e.Value())
		}
	}
	info, err := b.JetStream().Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("stream holds %d events, want the 2 the healer published", n)
	}
	for len(perms) > 0 {
		if err := <-perms; !strings.Contains(fmt.Sprint(err), "ermission") {
			t.Errorf("unexpected async error: %v", err)
		}
	}
}
