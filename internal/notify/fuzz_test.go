package notify

import (
	"cmp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// FuzzUntrustedLabels drives arbitrary labels and probe output through
// selection, the per-container policy, routing and message rendering, as a
// container owner could. Nothing may panic, every message is valid UTF-8,
// and Slack/Mattermost text has no < (so no <!channel>, no disguised
// link) and no mention a client would act on.
func FuzzUntrustedLabels(f *testing.F) {
	f.Add("healme=true\nhealme.notify_url=https://%ff.x/", "fixture run 1: sick", "web-1", "healme")
	f.Add("healme=yes\nhealme.max_restarts_in_frame=<!channel> @here\nhealme.notify_level=debug", "<https://evil.example|click> @all", "app.web.1", "healme")
	f.Add("autoheal=true\nexitCode=0\norg.riotkit.repairman.notify_url=gotify://g.example/tok", "![x](https://e/i.png)\x00\xff", "x", "custom")
	f.Add("healme=maybe\nhealme.max_historic_entries=99999999\nhealme.stop_timeout=-1", "@@channel @ here @\u200dall", "@channel", "all")
	f.Add("healme.notify_url=https://hooks.slack.com@evil.example/\nhealme.backoff=exponential", strings.Repeat("é", 300), "", "healme")
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		f.Fatal(err)
	}
	base := config.Policy{MaxHistoricEntries: 50, MaxRestartsInFrame: 3, FrameSize: time.Minute, Backoff: config.BackoffFrames}
	f.Fuzz(func(t *testing.T, labelText, probe, name, selector string) {
		labels := map[string]string{}
		for _, line := range strings.Split(labelText, "\n") {
			k, v, _ := strings.Cut(line, "=")
			labels[k] = v
		}
		selected := config.Selected(labels, selector)
		selErrs := config.SelectionErrors(labels, selector)
		p, errs := config.NewOverrides(selector).Policy(base, labels)
		if p.MaxHistoricEntries > config.MaxLabelHistoricEntries && p.MaxHistoricEntries != base.MaxHistoricEntries {
			t.Errorf("max_historic_entries %d from a label", p.MaxHistoricEntries)
		}
		code := 3
		now := time.Unix(1700000000, 0)
		data := events.Data{Host: "h", Container: name, ContainerID: "abc", Reason: "health_status: unhealthy", Output: probe, ExitCode: &code, Error: probe}
		target := ""
		if p.NotifyURL != "" {
			if err := config.CheckNotifyURL(p.NotifyURL); err != nil {
				t.Fatalf("policy took a notify URL its own check refuses: %v", err)
			}
			if r := Redact(p.NotifyURL); !utf8.ValidString(r) {
				t.Errorf("redacted URL is not valid UTF-8: %q", r)
			}
			target = events.NotifyTargetID(p.NotifyURL)
		}
		// The route the healer would store for the container.
		routing := NewRouting()
		if target != "" || p.NotifyLevel != "" {
			key := cmp.Or(target, bus.DefaultTargetsKey)
			routing.Apply(RouteFromValue(key, bus.RouteValue{URL: p.NotifyURL, Containers: map[string]int64{name: 1}, Levels: map[string]string{name: p.NotifyLevel}}))
		}
		evs := []events.Event{events.New(events.RestartSucceeded, "1", now, name, data)}
		for _, e := range append(errs, selErrs...) {
			evs = append(evs, events.New(events.ConfigError, "2", now, name, events.Data{Host: "h", Container: name, Label: e.Label, Value: e.Value, Expected: e.Expected}))
		}
		// Routing: the container's own target takes its events, the default
		// one does not.
		own := recipient{ID: target, Level: Debug}
		def := recipient{ID: "notify-default", Default: true, Level: Debug}
		d := destination(evs[0], routing)
		if name != "" && target != "" && (!own.takes(d, evs[0]) || def.takes(d, evs[0])) {
			t.Errorf("routing: own %v, default %v", own.takes(d, evs[0]), def.takes(d, evs[0]))
		}
		if l, ok := def.level(d); target == "" && p.NotifyLevel != "" && name != "" && (!ok || l != mustLevel(t, p.NotifyLevel)) {
			t.Errorf("the default target tells %q at %v, want its own level %s", name, l, p.NotifyLevel)
		}
		_ = selected
		for _, esc := range []Escape{EscapeSlack, EscapePlain} {
			text, err := Render(tmpl, evs, esc)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if !utf8.ValidString(text) {
				t.Fatalf("message is not valid UTF-8: %q", text)
			}
			low := strings.ToLower(text)
			for _, bad := range []string{"@channel", "@all", "@here", "@everyone"} {
				if strings.Contains(low, bad) {
					t.Fatalf("%q unescaped in %q", bad, text)
				}
			}
			if esc != nil && strings.Contains(text, "<") && isSlack(esc) {
				t.Fatalf("< unescaped in Slack text %q", text)
			}
		}
	})
}

func mustLevel(t *testing.T, s string) Level {
	l, err := ParseLevel(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func isSlack(esc Escape) bool { return esc("<") != "<" }
