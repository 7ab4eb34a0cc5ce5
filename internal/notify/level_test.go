package notify

import (
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

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
