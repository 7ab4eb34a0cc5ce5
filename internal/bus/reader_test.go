package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// freeAddr is a free loopback address for the bus to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
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

// openWithReader is a bus with a listener and a reader user, a stored
// notify route and a notifier-like durable on the healer's side.
func openWithReader(t *testing.T, ctx context.Context) (*Bus, string) {
	t.Helper()
	addr := freeAddr(t)
	b, err := Open(ctx, Options{DataDir: t.TempDir(), Listen: addr, User: "healer", Password: "hp", ReaderUser: "reader", ReaderPassword: "rp", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, addr
}

// Each of the reader's attacks on the healer's account, tried with a
// real client, is refused or lands in the reader's own account only.
func TestReaderAttacksAreRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, addr := openWithReader(t, ctx)
	kv, err := OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	const secret = "https://chat.example/hooks/s3cr3t-token"
	if _, err := kv.Put(ctx, "notify-x", []byte(secret)); err != nil {
		t.Fatal(err)
	}
	// The notifier's durable, as the notifier makes it.
	durable, err := b.JetStream().CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: "notifier", FilterSubject: "hmd.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.JetStream().Publish(ctx, fmt.Sprintf("hmd.h.web.outcome.n%d", i), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}

	perms := make(chan error, 64)
	rc, err := nats.Connect("nats://"+addr, nats.UserInfo("reader", "rp"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perms <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rjs, err := jetstream.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}

	t.Run("inboxes of others", func(t *testing.T) {
		sub, err := rc.SubscribeSync("_INBOX.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := rc.Flush(); err != nil {
			t.Fatal(err)
		}
		// The healer (and the notifier) read the routes through requests
		// whose replies go to their inboxes.
		if e, err := kv.Get(ctx, "notify-x"); err != nil || string(e.Value()) != secret {
			t.Fatalf("healer reads its route: %v", err)
		}
		if m, err := sub.NextMsg(time.Second); err == nil {
			t.Errorf("the reader saw another's inbox traffic on %s: %q", m.Subject, m.Data)
		}
	})

	t.Run("routes bucket", func(t *testing.T) {
		if rkv, err := rjs.KeyValue(short(), RoutesBucket); err == nil {
			if e, err := rkv.Get(short(), "notify-x"); err == nil {
				t.Errorf("the reader read a notify route: %s", e.Value())
			}
		}
		if m, err := rjs.Stream(short(), "KV_"+RoutesBucket); err == nil {
			t.Errorf("the reader sees the routes stream: %+v", m.CachedInfo().Config.Name)
		}
	})

	t.Run("the notifier's durable", func(t *testing.T) {
		// Rewriting its filter, or setting an inactivity threshold, lands
		// in the reader's own account, if anywhere.
		_, _ = rjs.CreateOrUpdateConsumer(short(), EventsStream, jetstream.ConsumerConfig{
			Durable: "notifier", FilterSubject: "hmd.nothing", InactiveThreshold: time.Second,
		})
		// Pulling its messages finds no such consumer.
		if c, err := rjs.Consumer(short(), EventsStream, "notifier"); err == nil {
			if msgs, err := c.Fetch(3, jetstream.FetchMaxWait(time.Second)); err == nil {
				for m := range msgs.Messages() {
					_ = m.Ack()
				}
			}
		}
		info, err := durable.Info(ctx)
		if err != nil {
			t.Fatalf("the notifier's durable is gone: %v", err)
		}
		if info.Config.FilterSubject != "hmd.>" || info.Config.InactiveThreshold != 0 {
			t.Errorf("the reader changed the notifier's durable: filter %q, inactive threshold %s", info.Config.FilterSubject, info.Config.InactiveThreshold)
		}
		if info.NumPending+uint64(info.NumAckPending) != 3 || info.AckFloor.Stream != 0 {
			t.Errorf("the reader took the notifier's messages: pending %d, ack pending %d, ack floor %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
	})

	t.Run("publish", func(t *testing.T) {
		for len(perms) > 0 {
			<-perms
		}
		for _, subj := range []string{"hmd.h.web.decision.restart_requested", "$KV." + RoutesBucket + ".notify-x",
			"$JS.API.STREAM.PURGE." + EventsStream, readerSourceAPI + ".CONSUMER.CREATE." + EventsStream, "anything"} {
			if err := rc.Publish(subj, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			_ = rc.Flush()
			select {
			case err := <-perms:
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Errorf("publish %s: got %v, want a permissions violation", subj, err)
				}
			case <-time.After(3 * time.Second):
				t.Errorf("the reader's publish on %s was not refused", subj)
			}
		}
	})

	t.Run("the mirror", func(t *testing.T) {
		if err := rjs.DeleteStream(short(), EventsStream); err == nil {
			t.Error("the reader deleted the stream")
		}
		if s, err := rjs.Stream(short(), EventsStream); err != nil {
			t.Errorf("reader cannot look at its stream: %v", err)
		} else if err := s.Purge(short()); err == nil {
			t.Error("the reader purged the stream")
		}
		if _, err := rjs.CreateStream(short(), jetstream.StreamConfig{Name: "MINE", Subjects: []string{"mine.>"}}); err == nil {
			t.Error("the reader made a stream")
		}
	})

	t.Run("bounded consumers", func(t *testing.T) {
		made := 0
		for range ReaderMaxConsumers + 4 {
			if _, err := rjs.CreateConsumer(short(), EventsStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute}); err != nil {
				if !strings.Contains(err.Error(), "maximum consumers") {
					t.Errorf("consumer %d: %v, want the maximum consumers error", made+1, err)
				}
				break
			}
			made++
		}
		if made >= ReaderMaxConsumers+1 {
			t.Errorf("the reader made %d consumers; the bound is %d", made, ReaderMaxConsumers)
		}
		t.Logf("the reader made %d consumers before the bound", made)
	})

	info, err := b.JetStream().Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 3 {
		t.Errorf("stream holds %d events, want the 3 the healer published", n)
	}
	if n := info.CachedInfo().State.Consumers; n != 1 {
		t.Errorf("the healer's stream has %d consumers, want the notifier's only", n)
	}
}
