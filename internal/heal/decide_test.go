package heal

import (
	"testing"

	"github.com/healmydocker/healmydocker/internal/events"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state State
		obs   events.Observed
		want  Decision
	}{
		{"unhealthy event restarts", State{}, events.Observed{Kind: events.DockerUnhealthy}, Decision{Restart, ReasonUnhealthy}},
		{"unhealthy when listed restarts", State{}, events.Observed{Kind: events.DockerUnhealthy, Reconciled: true}, Decision{Restart, ReasonReconciled}},
		{"restart already running", State{InFlight: true}, events.Observed{Kind: events.DockerUnhealthy}, Decision{Skip, ReasonInFlight}},
		{"listed while restart runs", State{InFlight: true}, events.Observed{Kind: events.DockerUnhealthy, Reconciled: true}, Decision{Skip, ReasonInFlight}},
		{"replayed event", State{}, events.Observed{Kind: events.DockerUnhealthy, Replayed: true}, Decision{Skip, ReasonReplayed}},
		{"healthy", State{}, events.Observed{Kind: events.DockerHealthy}, Decision{Verdict: Ignore}},
		{"die", State{}, events.Observed{Kind: events.DockerDie}, Decision{Verdict: Ignore}},
		{"kill", State{}, events.Observed{Kind: events.DockerKill}, Decision{Verdict: Ignore}},
		{"start", State{InFlight: true}, events.Observed{Kind: events.DockerStart}, Decision{Verdict: Ignore}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Decide(tt.state, tt.obs); got != tt.want {
				t.Errorf("Decide(%+v, %s) = %+v, want %+v", tt.state, tt.obs.Kind, got, tt.want)
			}
		})
	}
}
