package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// receiver is a real HTTP server on loopback that checks the Slack /
// Mattermost incoming-webhook format, failing the first few requests.
type receiver struct {
	t      *testing.T
	failN  int
	mu     sync.Mutex
	calls  int
	texts  *waitlog.Log[string]
	bodies []map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.calls++
	fail := r.calls <= r.failN
	r.mu.Unlock()
	if fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("webhook got %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(req.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		r.t.Errorf("webhook body is not JSON: %s", b)
	}
	text, ok := body["text"].(string)
	if !ok || text == "" {
		r.t.Errorf("webhook body lacks text: %s", b)
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
	r.texts.Add(text)
}

func TestRunnerGroupsRetriesAndDeliversOnce(t *testing.T) {
	bctx, b := testBus(t)
	ctx, cancel := context.WithCancel(bctx)
	defer cancel()
	rec := &receiver{t: t, failN: 2, texts: waitlog.New[string]()}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	target, err := NewWebhook(srv.URL+"/hooks/secret-token", "HealMyDocker", "")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	go func() { _ = pub.Run(ctx, time.Second) }()
	r := &Runner{ID: ConsumerName(srv.URL), Default: true, JS: b.JetStream(), Stream: bus.EventsStream, Target: target, Level: Debug, Template: tmpl,
		GroupWait: time.Second, MaxBackoff: 200 * time.Millisecond, Host: "h", Publisher: pub, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// The consumer delivers only what comes after it exists.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.JetStream().Consumer(ctx, bus.EventsStream, ConsumerName(srv.URL)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer not created")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A restart storm of 50 containers, and events a level would drop.
	for i := range 50 {
		name := fmt.Sprintf("web-%02d", i)
		pub.Publish(events.New(events.RestartSucceeded, "ok-"+name, time.Now(), name, events.Data{Host: "h", Container: name, Reason: "health_status: unhealthy", FrameRestarts: 1}))
		pub.Publish(events.New(events.DockerUnhealthy, "obs-"+name, time.Now(), name, events.Data{Host: "h", Container: name}))
	}
	var all strings.Builder
	for n := 1; ; n++ {
		text, ok := rec.texts.WaitNth(10*time.Second, n, func(string) bool { return true })
		if !ok {
			t.Fatalf("only %d messages arrived", n-1)
		}
		all.WriteString(text)
		if strings.Count(all.String(), "restarted") >= 50 {
			if n > 3 {
				t.Errorf("a storm of 50 restarts took %d messages, want at most 3", n)
			}
			break
		}
	}
	for i := range 50 {
		if c := strings.Count(all.String(), fmt.Sprintf("web-%02d: restarted", i)); c != 1 {
			t.Errorf("web-%02d reported %d times, want once", i, c)
		}
	}
	if strings.Contains(all.String(), "health_unhealthy") {
		t.Error("observations were sent at DEBUG")
	}
	rec.mu.Lock()
	if rec.bodies[0]["username"] != "HealMyDocker" {
		t.Errorf("Mattermost username missing: %v", rec.bodies[0])
	}
	rec.mu.Unlock()
	cancel()
	<-done
}

func TestWebhookErrorsRedactTheURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer srv.Close()
	w, err := NewWebhook(srv.URL+"/hooks/T000/B000/XXXXSECRET", "", "")
	if err != nil {
		t.Fatal(err)
	}
	retry, err := w.Notify(context.Background(), "x")
	if retry || err == nil {
		t.Fatalf("4xx: retry %v err %v; want no retry and an error", retry, err)
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(w.Name(), "SECRET") {
		t.Errorf("secret in %q / %q", err, w.Name())
	}
	if _, err := NewWebhook("not a url", "", ""); err == nil {
		t.Error("bad URL accepted")
	}
}

// A Shoutrrr generic webhook reaches a real receiver with its JSON payload.
func TestShoutrrrGenericWebhook(t *testing.T) {
	got := waitlog.New[map[string]string]()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("generic webhook: %s %s", r.Header.Get("Content-Type"), b)
		}
		got.Add(body)
	}))
	defer srv.Close()
	target, err := NewTarget("generic+"+srv.URL+"/hook?template=json", "")
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := target.Notify(context.Background(), "web-1: restarted"); err != nil {
		t.Fatalf("send: retry %v, %v", retry, err)
	}
	body, ok := got.WaitNth(5*time.Second, 1, func(map[string]string) bool { return true })
	if !ok || body["message"] != "web-1: restarted" {
		t.Errorf("payload %v, want message %q", body, "web-1: restarted")
	}
	if _, err := NewTarget("nosuchservice://x", ""); err == nil {
		t.Error("unknown service accepted")
	}
}

// A notifier stopped in the middle and started again delivers every event
// once: unsent ones are handed back (nak) and picked up by the next run.
func TestRunnerStoppedAndStartedAgainLosesNothing(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := &receiver{t: t, texts: waitlog.New[string]()}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	target, _ := NewWebhook(srv.URL+"/hook", "", "")
	tmpl, _ := ParseTemplate(DefaultTemplate)
	pub := bus.NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	go func() { _ = pub.Run(pctx, time.Second) }()
	name := ConsumerName(srv.URL)
	start := func() (context.CancelFunc, chan error) {
		rctx, cancel := context.WithCancel(ctx)
		r := &Runner{ID: ConsumerName(srv.URL), Default: true, JS: b.JetStream(), Stream: bus.EventsStream, Target: target, Level: Debug, Template: tmpl,
			GroupWait: 300 * time.Millisecond, MaxBackoff: time.Second, Host: "h", Publisher: pub, Log: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return cancel, done
	}
	stop, done := start()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := b.JetStream().Consumer(ctx, bus.EventsStream, name); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer not created")
		}
	}
	restart := func(i int) {
		n := fmt.Sprintf("c-%02d", i)
		pub.Publish(events.New(events.RestartSucceeded, "ok-"+n, time.Now(), n, events.Data{Host: "h", Container: n}))
	}
	for i := range 10 {
		restart(i)
	}
	if _, ok := rec.texts.WaitNth(10*time.Second, 1, func(string) bool { return true }); !ok {
		t.Fatal("first run delivered nothing")
	}
	for i := 10; i < 20; i++ {
		restart(i)
	}
	stop() // likely while it groups the second ten
	<-done
	if c, err := b.JetStream().Consumer(ctx, bus.EventsStream, name); err == nil {
		if ci, err := c.Info(ctx); err == nil {
			t.Logf("after the first run: ack floor %d, pending acks %d, redelivered %d, waiting %d", ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered, ci.NumPending)
		}
	}
	for i := 20; i < 30; i++ {
		restart(i) // while no notifier runs
	}
	stop, done = start()
	defer func() { stop(); <-done }()
	all := func() string { return strings.Join(rec.texts.All(func(string) bool { return true }), "\n") }
	for deadline := time.Now().Add(15 * time.Second); strings.Count(all(), ": restarted") < 30; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart only %d of 30 delivered", strings.Count(all(), ": restarted"))
		}
	}
	for i := range 30 {
		if c := strings.Count(all(), fmt.Sprintf("c-%02d: restarted", i)); c != 1 {
			t.Errorf("c-%02d told %d times, want once", i, c)
		}
	}
	if t.Failed() {
		for i, m := range rec.texts.All(func(string) bool { return true }) {
			t.Logf("message %d: %q", i, m)
		}
	}
}

// testBus is a fresh bus for one test, closed before its context ends.
func testBus(t *testing.T) (context.Context, *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the bus closes before ctx ends.
	t.Cleanup(func() { _ = b.Close() })
	return ctx, b
}
