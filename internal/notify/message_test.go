package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

func TestDefaultTemplateCarriesTheLogTail(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 3, 4, 5, 0, time.UTC)
	restarted := events.New(events.RestartSucceeded, "1", at, "web", events.Data{
		Host: "h1", Container: "web", Reason: "health_status: unhealthy", FrameRestarts: 1,
		LogTail: "GET /healthz 500\nerror: db\x1b[31m down\x07",
	})
	plain := events.New(events.RestartFailed, "2", at, "db", events.Data{Host: "h1", Container: "db", Error: "boom"})
	long := events.New(events.RestartSucceeded, "3", at, "big", events.Data{Host: "h1", Container: "big",
		LogTail: strings.Repeat("line\n", 80) + strings.Repeat("x", 400)})

	for _, tc := range []struct {
		name string
		evs  []events.Event
		want string
	}{
		{"tail under its event", []events.Event{restarted, plain},
			"[h1] web: restarted (health_status: unhealthy), restart 1 in this frame\n" +
				"    | GET /healthz 500\n" +
				"    | error: db[31m down\n" +
				"[h1] db: restart failed: boom"},
		{"no tail, no block", []events.Event{plain}, "[h1] db: restart failed: boom"},
		{"a bug caught", []events.Event{events.New(events.HealerPanic, "4", at, "", events.Data{Host: "h1", Reason: "docker watcher sink", Error: "index out of range <!here>"})},
			"[h1] a bug in HealMyDocker was caught; what it was handling was dropped, and it goes on (docker watcher sink): index out of range &lt;!here&gt;"},
	} {
		got, err := Render(tmpl, tc.evs, EscapeSlack)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, got, tc.want)
		}
	}

	got, err := Render(tmpl, []events.Event{long}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(got, "    | "); n != logTailLines {
		t.Errorf("a long tail renders %d lines, want %d", n, logTailLines)
	}
	if strings.Contains(got, strings.Repeat("x", logTailRunes+1)) || !strings.Contains(got, strings.Repeat("x", logTailRunes)+"…") {
		t.Errorf("a long line is not cut")
	}
}
