package bus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
)

func open(t *testing.T, dir string) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	return b
}

func ev(i int) events.Event {
	return events.Observed{Kind: events.DockerDie, ContainerID: "c0ffee", Name: "web", DockerTime: time.Unix(0, int64(i))}.Event("h")
}

func streamMsgs(t *testing.T, b *Bus) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	_, err := Open(context.Background(), Options{DataDir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNoListenerByDefault(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	if u := b.ClientURL(); u != "" {
		t.Errorf("listening on %s without being asked", u)
	}
}

func TestListenerNeedsAuth(t *testing.T) {
	_, err := Open(context.Background(), Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("listener without credentials accepted")
	}
}

func TestPublishStoresOnceAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	p := NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, 10*time.Second) }()
	for i := range 10 {
		p.Publish(ev(i))
	}
	for i := range 10 { // the same Docker events again, as after a reconnect
		p.Publish(ev(i))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, b); n != 10 {
		t.Errorf("stored %d events, want 10 (duplicates by id dropped)", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, dir)
	defer b.Close()
	if n := streamMsgs(t, b); n != 10 {
		t.Errorf("after reopening: %d events, want 10", n)
	}
	s, _ := b.JetStream().Stream(context.Background(), EventsStream)
	c, err := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.Unmarshal(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if want := ev(i).ID; e.ID != want {
			t.Errorf("event %d is %s, want %s: order lost", i, e.ID, want)
		}
		if m.Subject() != "hmd.h.web.docker.die" {
			t.Errorf("subject %s", m.Subject())
		}
	}
}

func TestPublisherKeepsEventsWhileStoreFails(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	js := b.JetStream()
	if err := js.DeleteStream(context.Background(), EventsStream); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(js, 0, 0, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, 10*time.Second) }()
	for i := range 5 {
		p.Publish(ev(i))
	}
	testkit.Until(t, 10*time.Second, "the publisher to report the missing stream", func() bool { return p.Healthy() != nil })
	if p.Pending() != 5 {
		t.Errorf("pending %d while the store fails, want 5", p.Pending())
	}
	if err := b.ensureEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the pending events to be stored after the stream came back", func() (int, bool) {
		n := p.Pending()
		return n, n == 0
	})
	cancel()
	<-done
	if n := streamMsgs(t, b); n != 5 {
		t.Errorf("stored %d, want 5", n)
	}
	if err := p.Healthy(); err != nil {
		t.Errorf("still unhealthy after recovery: %v", err)
	}
}

// Two writers on one container's history: the second one's stale position
// is refused by the server (expected last subject sequence), re-read, and
// its event lands on top instead of forking the history.
func TestHistoryRefusesAStaleWriter(t *testing.T) {
	b := open(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	h1, err := b.OpenHistory(ctx, "h", HistoryOptions{PerContainer: 10}, log)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := b.OpenHistory(ctx, "h", HistoryOptions{PerContainer: 10}, log)
	if err != nil {
		t.Fatal(err)
	}
	store := func(h *History, n int) error {
		e := ev(n)
		e.Data.ContainerID = "c0ffee"
		h.Publish(e) // counted as queued, as the healer does
		stored, err := h.storeBatch(ctx, []events.Event{e})
		if err == nil && stored != 1 {
			t.Fatalf("stored %d of 1", stored)
		}
		return err
	}
	// The second writer learns its position, then the first appends.
	if err := store(h2, 0); err != nil {
		t.Fatalf("second writer: %v", err)
	}
	if err := store(h1, 1); err != nil {
		t.Fatalf("first writer: %v", err)
	}
	if err := store(h2, 2); err == nil {
		t.Fatal("a writer with a stale position appended")
	}
	if err := store(h2, 2); err != nil {
		t.Fatalf("after re-reading its position: %v", err)
	}
	s, _ := b.JetStream().Stream(ctx, HistoryStream)
	m, err := s.GetLastMsgForSubject(ctx, HistorySubject("h", "c0ffee"))
	if err != nil {
		t.Fatal(err)
	}
	if want := ev(2).ID; m.Sequence != 3 || m.Header.Get("Nats-Msg-Id") != want {
		t.Errorf("last message seq %d id %s, want 3 and %s", m.Sequence, m.Header.Get("Nats-Msg-Id"), want)
	}
}
