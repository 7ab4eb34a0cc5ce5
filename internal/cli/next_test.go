package cli

import (
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
)

// check's "if it turned unhealthy now" is the decision function's answer.
func TestNextRestart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := config.Policy{BetweenRestarts: 15 * time.Second, FrameSize: 300 * time.Second, MaxRestartsInFrame: 3,
		BetweenFrames: 600 * time.Second, GiveUpAfterRestarts: 50, Backoff: config.BackoffFrames}
	fs := t0
	frameFull := heal.FoldAll([]events.Event{events.New(events.RestartRequested, "r", t0, "web",
		events.Data{Host: "h", Attempt: 3, FrameStart: &fs, FrameRestarts: 3, BackoffStep: 3})})
	paused := heal.FoldAll([]events.Event{events.New(events.ControlPaused, "p", t0, "web", events.Data{Host: "h"})})
	retry := t0.Add(600 * time.Second)
	tests := []struct {
		name string
		s    heal.State
		want CheckNext
	}{
		{"fresh", heal.State{}, CheckNext{Verdict: "restart", Reason: heal.ReasonUnhealthy}},
		{"frame used up", frameFull, CheckNext{Verdict: "skip", Reason: events.ReasonFrameLimit, At: &retry}},
		{"paused", paused, CheckNext{Verdict: "skip", Reason: heal.ReasonMaintenance}},
	}
	for _, tt := range tests {
		got := NextRestart(tt.s, p, t0.Add(time.Minute))
		if got.Verdict != tt.want.Verdict || got.Reason != tt.want.Reason || (got.At == nil) != (tt.want.At == nil) || (got.At != nil && !got.At.Equal(*tt.want.At)) {
			t.Errorf("%s: got %+v, want %+v", tt.name, *got, tt.want)
		}
	}
}
