package bus

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// BenchmarkPublishStore: events through the publisher into the file store,
// in-process, each acked by JetStream.
func BenchmarkPublishStore(b *testing.B) {
	ctx := context.Background()
	bus, err := Open(ctx, Options{DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	pub := NewPublisher(bus.JetStream(), 0, DefaultLinger, slog.New(slog.DiscardHandler))
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = pub.Run(pctx, time.Minute); close(done) }()
	evs := make([]events.Event, b.N)
	for i := range evs {
		evs[i] = events.New(events.RestartSucceeded, fmt.Sprintf("bench-%d", i), time.Now(), "web", events.Data{Host: "h", ContainerID: "c0ffee", Reason: "health_status: unhealthy"})
	}
	b.ResetTimer()
	for _, e := range evs {
		pub.Publish(e)
	}
	for pub.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	stop()
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkConsumeStore: events read back from the file store through an
// ordered consumer, as the status view and `healer events` read them.
func BenchmarkConsumeStore(b *testing.B) {
	ctx := context.Background()
	bus, err := Open(ctx, Options{DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	js := bus.JetStream()
	data, _ := events.Marshal(events.New(events.RestartSucceeded, "x", time.Now(), "web", events.Data{Host: "h", ContainerID: "c0ffee"}))
	for i := 0; i < b.N; i++ {
		if _, err := js.PublishAsync("hmd.h.web.outcome.restart_succeeded", data, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.ResetTimer()
	c, err := js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{})
	n := 0
	cc, err := c.Consume(func(m jetstream.Msg) {
		if _, err := events.Unmarshal(m.Data()); err != nil {
			b.Error(err)
		}
		n++
		if n == b.N {
			close(got)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	<-got
	b.StopTimer()
	cc.Stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
