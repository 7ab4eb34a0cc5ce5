package notify

import (
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// A dependent's message names the parent it was acted on for.
func TestMessageNamesTheParent(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ev   events.Event
		want string
	}{
		{name: "dependent restarted", ev: events.New(events.RestartSucceeded, "1", at, "app", events.Data{Host: "h", Reason: "its network parent vpn was restarted", Parent: "vpn"}),
			want: "[h] app: restarted because its network parent vpn was restarted"},
		{name: "dependent skipped", ev: events.New(events.RestartSkipped, "2", at, "app", events.Data{Host: "h", Reason: "stopped by a user or API call", Parent: "vpn"}),
			want: "[h] app: not restarted (stopped by a user or API call)"},
		{name: "dependent recreated", ev: events.New(events.Recreated, "4", at, "app", events.Data{Host: "h", Reason: "its network parent vpn was recreated", Parent: "vpn", NewContainerID: "0123456789abcdef"}),
			want: "[h] app: recreated as 0123456789ab because its network parent vpn was recreated"},
		{name: "dependent recreate failed", ev: events.New(events.RecreateFailed, "5", at, "app", events.Data{Host: "h", Reason: "its network parent vpn was recreated", Parent: "vpn", Error: "recreate app: POST /containers/create: forbidden"}),
			want: "[h] app: could not be recreated, left as it was because its network parent vpn was recreated: recreate app: POST /containers/create: forbidden"},
		{name: "own restart", ev: events.New(events.RestartSucceeded, "3", at, "vpn", events.Data{Host: "h", Reason: "health_status: unhealthy"}),
			want: "[h] vpn: restarted (health_status: unhealthy)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Render(tmpl, []events.Event{tt.ev}, nil)
			if err != nil || got != tt.want {
				t.Errorf("got %q (%v)\nwant %q", got, err, tt.want)
			}
		})
	}
}
