package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
)

// BenchmarkRunnerOneMessagePerEvent: a target that answers at once, no
// grouping (each event its own message), each acked after delivery: the
// notifier's own cost per message.
func BenchmarkRunnerOneMessagePerEvent(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	bs, err := bus.Open(ctx, bus.Options{DataDir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	var got atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if got.Add(1) == int64(b.N) {
			close(done)
		}
	}))
	defer srv.Close()
	target, err := NewWebhook(srv.URL+"/hooks/bench", "", "")
	if err != nil {
		b.Fatal(err)
	}
	tmpl, _ := ParseTemplate(DefaultTemplate)
	pub := bus.NewPublisher(bs.JetStream(), 0, 0, log)
	go func() { _ = pub.Run(ctx, time.Second) }()
	r := &Runner{ID: ConsumerName(srv.URL), Default: true, JS: bs.JetStream(), Stream: bus.EventsStream, Target: target, Level: Debug,
		Template: tmpl, GroupWait: 0, MaxBackoff: time.Second, Host: "h", Publisher: pub, Log: log}
	go func() { _ = r.Run(ctx) }()
	for {
		if _, err := bs.JetStream().Consumer(ctx, bus.EventsStream, r.ID); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pub.Publish(events.New(events.RestartSucceeded, fmt.Sprintf("b-%d", i), time.Now(), "web", events.Data{Host: "h", Container: "web", Reason: "health_status: unhealthy"}))
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
}
