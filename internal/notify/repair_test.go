package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// repairRig is a bus, a real Slack-format receiver on loopback and a
// runner for it whose log the test reads.
type repairRig struct {
	b    *bus.Bus
	pub  *bus.Publisher
	rec  *receiver
	r    *Runner
	logs *waitlog.Buffer
}

func newRepairRig(t *testing.T) *repairRig {
	t.Helper()
	ctx, b := testBus(t)
	rec := &receiver{t: t, texts: waitlog.New[string]()}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	target, err := NewWebhook(srv.URL+"/hooks/x", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := ParseTemplate(DefaultTemplate)
	pub := bus.NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	go func() { _ = pub.Run(ctx, time.Second) }()
	logs := &waitlog.Buffer{}
	r := &Runner{ID: ConsumerName(srv.URL), Default: true, JS: b.JetStream(), Stream: bus.EventsStream, Target: target, Level: Debug, Template: tmpl,
		GroupWait: 200 * time.Millisecond, MaxBackoff: time.Second, Host: "h", Publisher: pub, Log: slog.New(slog.NewTextHandler(logs, nil))}
	return &repairRig{b: b, pub: pub, rec: rec, r: r, logs: logs}
}

func (g *repairRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (g *repairRig) restart(i int) {
	n := fmt.Sprintf("c-%02d", i)
	g.pub.Publish(events.New(events.RestartSucceeded, "ok-"+n, time.Now(), n, events.Data{Host: "h", Container: n}))
}

// waitTold waits until c-00 .. c-(n-1) were told, then checks each once
// and in order.
func (g *repairRig) waitTold(t *testing.T, n int) {
	t.Helper()
	all := func() string { return strings.Join(g.rec.texts.All(func(string) bool { return true }), "\n") }
	for deadline := time.Now().Add(20 * time.Second); strings.Count(all(), ": restarted") < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d delivered:\n%s\nlog:\n%s", strings.Count(all(), ": restarted"), n, all(), g.logs.String())
		}
	}
	text, at := all(), -1
	for i := range n {
		name := fmt.Sprintf("c-%02d: restarted", i)
		if c := strings.Count(text, name); c != 1 {
			t.Errorf("c-%02d told %d times, want once", i, c)
		}
		if p := strings.Index(text, name); p < at {
			t.Errorf("c-%02d told out of order", i)
		} else {
			at = p
		}
	}
}

func (g *repairRig) waitConsumer(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := g.b.JetStream().Consumer(context.Background(), bus.EventsStream, g.r.ID); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not made:\n%s", g.logs.String())
		}
	}
}

// An operator deletes the durable under a running notifier: it is made
// again from the last event handled, with a log line; what came meanwhile
// and after is delivered once, and nothing is told twice.
func TestRunnerRemakesADeletedDurable(t *testing.T) {
	g := newRepairRig(t)
	g.run(t)
	g.waitConsumer(t)
	for i := range 5 {
		g.restart(i)
	}
	g.waitTold(t, 5)
	deleted := time.Now()
	if err := g.b.JetStream().DeleteConsumer(context.Background(), bus.EventsStream, g.r.ID); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		g.restart(i)
	}
	g.waitTold(t, 10)
	t.Logf("the 5 events after the delete were told %s after it", time.Since(deleted).Round(time.Millisecond))
	if !strings.Contains(g.logs.String(), "durable consumer disappeared") {
		t.Errorf("no log line for the lost durable:\n%s", g.logs.String())
	}
	for i := 10; i < 15; i++ {
		g.restart(i)
	}
	g.waitTold(t, 15)
}

// staleServer hands back, the first time a durable is made again after a
// stream sequence, the deleted durable's state instead, as nats-server
// does when the consumer is made again while the delete is still removing
// its store: an older ack floor, and the events handed out before pending
// redelivery.
type staleServer struct {
	jetstream.JetStream
	once sync.Once
}

func (s *staleServer) CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	stale := false
	if cfg.DeliverPolicy == jetstream.DeliverByStartSequencePolicy {
		s.once.Do(func() { stale = true })
	}
	if !stale {
		return s.JetStream.CreateConsumer(ctx, stream, cfg)
	}
	old := cfg
	old.OptStartSeq = 1
	c, err := s.JetStream.CreateConsumer(ctx, stream, old)
	if err != nil {
		return nil, err
	}
	batch, err := c.FetchNoWait(int(cfg.OptStartSeq - 1))
	if err != nil {
		return nil, err
	}
	for m := range batch.Messages() {
		if err := m.Nak(); err != nil {
			return nil, err
		}
	}
	if err := batch.Error(); err != nil {
		return nil, err
	}
	return s.JetStream.Consumer(ctx, stream, cfg.Durable)
}

// The durable deleted under a notifier is made again, and the server hands
// back the deleted one's state (seen after a split notifier was killed and
// started again): that consumer is deleted and made afresh, with a log
// line, and nothing is told twice.
func TestRunnerRemakesADurableThatCameBackWithItsOldState(t *testing.T) {
	g := newRepairRig(t)
	g.r.JS = &staleServer{JetStream: g.b.JetStream()}
	g.run(t)
	g.waitConsumer(t)
	for i := range 5 {
		g.restart(i)
	}
	g.waitTold(t, 5)
	if err := g.b.JetStream().DeleteConsumer(context.Background(), bus.EventsStream, g.r.ID); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		g.restart(i)
	}
	g.waitTold(t, 10)
	if !strings.Contains(g.logs.String(), "came back with the deleted one's state") {
		t.Errorf("no log line for the durable's old state:\n%s", g.logs.String())
	}
	for i := 10; i < 15; i++ {
		g.restart(i)
	}
	g.waitTold(t, 15)
}

// A target whose consumer cannot be made at start (the stream is not
// there: a central notifier started before any host joined, or a healer
// whose store is not up) is tried again, and delivers once it can.
func TestRunnerRetriesTheConsumerUntilItCanBeMade(t *testing.T) {
	g := newRepairRig(t)
	ctx := context.Background()
	s, err := g.b.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if err := g.b.JetStream().DeleteStream(ctx, bus.EventsStream); err != nil {
		t.Fatal(err)
	}
	g.run(t)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(g.logs.String(), "cannot make the target's consumer; trying again"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no retry logged:\n%s", g.logs.String())
		}
	}
	if _, err := g.b.JetStream().CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	g.waitConsumer(t)
	for i := range 5 {
		g.restart(i)
	}
	g.waitTold(t, 5)
}

// The stream itself is made again under a running notifier (a wiped data
// dir under a split notifier): its sequences start over, and the notifier
// resumes by time, telling the new events once.
func TestRunnerResumesOnAStreamMadeAgain(t *testing.T) {
	g := newRepairRig(t)
	g.run(t)
	g.waitConsumer(t)
	for i := range 5 {
		g.restart(i)
	}
	g.waitTold(t, 5)
	ctx := context.Background()
	s, err := g.b.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if err := g.b.JetStream().DeleteStream(ctx, bus.EventsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := g.b.JetStream().CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 8; i++ {
		g.restart(i)
	}
	g.waitTold(t, 8)
}
