package notify

import (
	"errors"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func withAction(e events.Event, a string) events.Event { e.Data.Action = a; return e }

func TestWants(t *testing.T) {
	t.Parallel()
	ev := func(k events.Kind, reason string) events.Event {
		return events.New(k, "id", t0, "web", events.Data{Host: "h", Reason: reason})
	}
	tests := []struct {
		name                 string
		e                    events.Event
		debug, info, warning bool
	}{
		{"restart", ev(events.RestartSucceeded, ""), true, false, false},
		{"restart failed", ev(events.RestartFailed, ""), true, true, false},
		{"frame limit", ev(events.RestartSkipped, events.ReasonFrameLimit), true, true, true},
		{"other skip", ev(events.RestartSkipped, "within seconds_between_restarts of the last restart"), false, false, false},
		{"config error", ev(events.ConfigError, ""), true, true, true},
		{"gave up", ev(events.GaveUp, ""), true, true, true},
		{"docker lost", ev(events.DockerLost, ""), true, true, false},
		{"docker back", ev(events.DockerConnected, ""), true, true, false},
		{"cleanup", ev(events.CleanupRemoved, ""), true, true, false},
		{"observation", ev(events.DockerUnhealthy, ""), false, false, false},
		{"restart decision", ev(events.RestartRequested, ""), false, false, false},
		{"notify decision", withAction(ev(events.RestartRequested, ""), "notify"), true, true, false},
		{"stopped by action stop", ev(events.Stopped, ""), true, true, false},
		{"a bug caught", ev(events.HealerPanic, "docker watcher sink"), true, true, true},
		{"a bug caught in a notify runner", ev(events.HealerPanic, NotifyRunnerWhere+"notify-0a1b"), false, false, false},
	}
	for _, tt := range tests {
		for l, want := range map[Level]bool{Debug: tt.debug, Info: tt.info, Warning: tt.warning} {
			if got := Wants(l, tt.e); got != want {
				t.Errorf("%s at level %d: %v, want %v", tt.name, l, got, want)
			}
		}
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Level{"DEBUG": Debug, "info": Info, "WARNING": Warning} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "ALL", "verbose"} {
		if _, err := ParseLevel(bad); err == nil {
			t.Errorf("ParseLevel(%q) accepted", bad)
		}
	}
}

func TestRefused(t *testing.T) {
	for _, c := range []struct {
		err  string
		want bool
	}{
		{"unexpected status: 401 Unauthorized", true},
		{"server error: server responded with Unauthorized (401): you need to provide a valid access token", true},
		{"failed to send: HTTP 404", true},
		{"notification failed: 403 forbidden", true},
		{"unexpected status: 500 Internal Server Error", false},
		{"unexpected status: 429 Too Many Requests", false},
		{"unexpected status: 408 Request Timeout", false},
		{`Post "http://127.0.0.1:401/message": dial tcp 127.0.0.1:401: connect: connection refused`, false},
		{"context deadline exceeded", false},
	} {
		if got := Refused(errors.New(c.err)); got != c.want {
			t.Errorf("Refused(%q) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRunnerTakes(t *testing.T) {
	restarted := func(target, level string) events.Event {
		return events.New(events.RestartSucceeded, "x", time.Now(), "web", events.Data{Host: "h", NotifyTarget: target, NotifyLevel: level})
	}
	failed := events.New(events.RestartFailed, "y", time.Now(), "web", events.Data{Host: "h"})
	def := &Runner{ID: "notify-a", Default: true, Level: Debug}
	defWarn := &Runner{ID: "notify-a", Default: true, Level: Warning}
	route := &Runner{ID: "notify-b", Level: Info}
	for _, c := range []struct {
		name string
		r    *Runner
		e    events.Event
		want bool
	}{
		{"default takes a container without a target", def, restarted("", ""), true},
		{"default leaves a container with its own target", def, restarted("notify-b", ""), false},
		{"default takes a container naming it", def, restarted("notify-a", ""), true},
		{"route takes its container", route, restarted("notify-b", "debug"), true},
		{"route leaves containers without a target", route, failed, false},
		{"route leaves other targets", route, restarted("notify-c", "debug"), false},
		{"container level debug beats the target's warning", defWarn, restarted("", "debug"), true},
		{"target level warning drops a restart", defWarn, restarted("", ""), false},
		{"container level info drops a restart", def, restarted("", "info"), false},
	} {
		if got := c.r.recipient().takes(destination(c.e, nil), c.e); got != c.want {
			t.Errorf("%s: takes = %v, want %v", c.name, got, c.want)
		}
	}
}
