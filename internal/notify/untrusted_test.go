package notify

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// hostile is outside text that tries every trick a Slack or Mattermost
// message knows.
const hostile = "<!channel> @here @all @channel <https://evil.example|click> ![x](https://evil.example/i.png) [ok](https://evil.example) & \xff\n[h] forged: restarted \u202e"

// SlackUnsafe reports what in text Slack or Mattermost would act on.
func SlackUnsafe(text string) string {
	for _, bad := range []string{"<!", "<http", "@channel", "@here", "@all", "@everyone", "](", "![", "\n[h] forged"} {
		if strings.Contains(text, bad) {
			return bad
		}
	}
	if !utf8.ValidString(text) {
		return "invalid UTF-8"
	}
	return ""
}

func TestRenderEscapesOutsideTextForSlack(t *testing.T) {
	t.Parallel()
	code := 3
	evs := []events.Event{
		events.New(events.RestartSucceeded, "1", time.Now(), hostile, events.Data{Host: "h", Container: hostile, Reason: hostile, Output: hostile, ExitCode: &code, Error: hostile, LogTail: "ok\n" + hostile}),
		events.New(events.ConfigError, "2", time.Now(), "web", events.Data{Host: "h", Container: "web", Label: "healme." + hostile, Value: hostile, Expected: "x"}),
		events.New(events.CleanupRemoved, "3", time.Now(), "web", events.Data{Host: "h", Canonical: hostile}),
	}
	custom, err := ParseTemplate(`{{range .Events}}{{.Subject}} {{.Data.Output}} {{.Data.Value}} {{.Data.Label}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := ParseTemplate(DefaultTemplate)
	for name, tmpl := range map[string]*template.Template{"default": def, "custom": custom} {
		text, err := Render(tmpl, evs, EscapeSlack)
		if err != nil {
			t.Fatal(err)
		}
		if bad := SlackUnsafe(text); bad != "" {
			t.Errorf("%s template: %q gets through:\n%s", name, bad, text)
		}
		if !strings.Contains(text, "&lt;!channel&gt;") || !strings.Contains(text, "@\u200dhere") {
			t.Errorf("%s template: the hostile text is not there, escaped:\n%s", name, text)
		}
	}
	text, _ := Render(def, evs, EscapePlain)
	for _, bad := range []string{"@here", "@all", "](", "\n[h] forged"} {
		if strings.Contains(text, bad) {
			t.Errorf("plain: %q gets through: %s", bad, text)
		}
	}
}

// panicky panics on a message that names a poisoned container, like a
// target or a metric that cannot take some input.
type panicky struct{ got *waitlog.Log[string] }

func (p *panicky) Name() string { return "panicky" }
func (p *panicky) Notify(_ context.Context, text string) (bool, error) {
	if strings.Contains(text, "poison") {
		panic("cannot take this text")
	}
	p.got.Add(text)
	return false, nil
}

type reportLog struct {
	mu  sync.Mutex
	evs []events.Event
}

func (e *reportLog) Publish(ev events.Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *reportLog) count(k events.Kind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind() == k {
			n++
		}
	}
	return n
}

// A message that panics the runner is terminated, reported once as
// healer.panic, and the runner goes on with the next ones; metrics are
// counted by the target's id.
func TestRunnerTerminatesAPoisonedMessage(t *testing.T) {
	bctx, b := testBus(t)
	ctx, cancel := context.WithCancel(bctx)
	defer cancel()
	tmpl, _ := ParseTemplate(DefaultTemplate)
	pub := bus.NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	go func() { _ = pub.Run(ctx, time.Second) }()
	target := &panicky{got: waitlog.New[string]()}
	reports := &reportLog{}
	var sentMu sync.Mutex
	sent := map[string]int{}
	r := &Runner{ID: "notify-test", Default: true, JS: b.JetStream(), Stream: bus.EventsStream, Target: target, Level: Debug, Template: tmpl,
		GroupWait: 300 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Host: "h", Publisher: reports, Log: slog.New(slog.DiscardHandler),
		StartAt: time.Now().Add(-time.Minute),
		Sent:    func(target, result string) { sentMu.Lock(); sent[target+" "+result]++; sentMu.Unlock() }}
	for _, name := range []string{"web-1", "poison", "web-2"} {
		pub.Publish(events.New(events.RestartSucceeded, "ok-"+name, time.Now(), name, events.Data{Host: "h", Container: name}))
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for _, name := range []string{"web-1", "web-2"} {
		if _, ok := target.got.WaitNth(10*time.Second, 1, func(s string) bool { return strings.Contains(s, name+": restarted") }); !ok {
			t.Fatalf("%s was not delivered after the poisoned message", name)
		}
	}
	c, err := b.JetStream().Consumer(ctx, bus.EventsStream, "notify-test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the poisoned message is still pending: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := reports.count(events.HealerPanic); n < 1 {
		t.Errorf("healer.panic published %d times, want at least once", n)
	}
	if n := len(target.got.All(func(s string) bool { return strings.Contains(s, "poison") })); n != 0 {
		t.Errorf("the poisoned event was delivered %d times", n)
	}
	sentMu.Lock()
	if sent["notify-test ok"] < 1 || len(sent) != 1 {
		t.Errorf("metrics by %v, want by the target id", sent)
	}
	sentMu.Unlock()
	cancel()
	<-done
}

// A webhook answering with a redirect is not followed: the message is
// refused, and the place it pointed to gets nothing.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the redirect was followed") }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	w, err := NewWebhook(srv.URL+"/hook", "", "")
	if err != nil {
		t.Fatal(err)
	}
	retry, err := w.Notify(context.Background(), "x")
	if err == nil || retry || !strings.Contains(err.Error(), "307") {
		t.Errorf("redirect: retry %v, err %v; want a refusal naming 307", retry, err)
	}
}

func TestNewTargetRefusesHostileURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"https://%ff.x/", "https://hooks.example@evil.example/", "file:///etc/passwd"} {
		if _, err := NewTarget(u, ""); err == nil {
			t.Errorf("NewTarget(%q) accepted", u)
		} else if !utf8.ValidString(err.Error()) {
			t.Errorf("error is not valid UTF-8: %q", err)
		}
	}
}
