package notify

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
)

// keptMsg counts the "still at it" a message is sent.
type keptMsg struct {
	jetstream.Msg
	n *atomic.Int64
}

func (m keptMsg) InProgress() error { m.n.Add(1); return m.Msg.InProgress() }

type keptBatch struct {
	ch  chan jetstream.Msg
	err error
}

func (b *keptBatch) Messages() <-chan jetstream.Msg { return b.ch }
func (b *keptBatch) Error() error                   { return b.err }

// keptConsumer hands out keptMsgs.
type keptConsumer struct {
	jetstream.Consumer
	n *atomic.Int64
}

func (c keptConsumer) Next(opts ...jetstream.FetchOpt) (jetstream.Msg, error) {
	m, err := c.Consumer.Next(opts...)
	if err != nil {
		return nil, err
	}
	return keptMsg{m, c.n}, nil
}

func (c keptConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	out := &keptBatch{ch: make(chan jetstream.Msg, n)}
	for m := range b.Messages() {
		out.ch <- keptMsg{m, c.n}
	}
	close(out.ch)
	out.err = b.Error()
	return out, nil
}

// A group gathered from a backlog (a notifier started after a flood, or a
// host flooding the fleet stream) tells the server it is still at its
// messages once per half keepAlive, not all of them again after each batch of
// a thousand: that was quadratic, some fifty "still at it" per message for
// a backlog of ten thousand.
func TestCollectKeepsAGroupAliveWithoutRepeatingItself(t *testing.T) {
	ctx, b := testBus(t)
	js := b.JetStream()
	const backlog = 10_000
	for i := range backlog {
		e := events.New(events.DockerDie, fmt.Sprint(i), time.Now(), "flood", events.Data{Host: "h", Container: "flood"})
		data, _ := events.Marshal(e)
		if _, err := js.PublishAsync(e.NATSSubject(), data); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("backlog not stored")
	}
	r := &Runner{ID: "collect-test", JS: js, Stream: bus.EventsStream, GroupWait: 2 * time.Second, StartAt: time.Now().Add(-time.Hour),
		Target: &panicky{}, Log: slog.New(slog.DiscardHandler)}
	c, err := r.consumer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kept atomic.Int64
	msgs, err := r.collect(ctx, keptConsumer{c, &kept})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < backlog {
		t.Fatalf("gathered %d of %d", len(msgs), backlog)
	}
	if n := kept.Load(); n > int64(len(msgs)) {
		t.Errorf("%d \"still at it\" for a group of %d gathered in %v, want at most one each per %v", n, len(msgs), r.GroupWait, keepAlive/2)
	}
	nak(msgs)
}
