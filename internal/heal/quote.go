package heal

import (
	"context"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// maxOutput bounds the probe output an event carries; maxLogTail its log
// lines.
const (
	maxOutput  = 512
	maxLogTail = 2048
)

// quoted is what a restart's message quotes of the container.
type quoted struct{ output, logTail string }

// quote reads, beside the restart, the output of the container's last
// failed probe (for an unhealthy one) and the last lines of its log (for
// an unhealthy or crashed one).
func (h *Healer) quote(o events.Observed, p config.Policy) <-chan quoted {
	ch := make(chan quoted, 1)
	probe := o.Kind == events.DockerUnhealthy
	logs := p.NotifyLogLines > 0 && (probe || o.Kind == events.DockerDie)
	if !probe && !logs {
		ch <- quoted{}
		return ch
	}
	go func() {
		ctx, cancel := context.WithTimeout(h.ctx, 3*time.Second)
		defer cancel()
		lines := 0
		if logs {
			lines = p.NotifyLogLines
		}
		// One inspect serves both reads.
		probeOut, tail, err := h.o.Docker.LastWords(ctx, o.ContainerID, lines, maxLogTail)
		if err != nil {
			h.o.Log.Warn("cannot read the container's probe output or log for the message", "container", o.Name, "err", err)
		}
		q := quoted{logTail: tail}
		if probe {
			q.output = boundOutput(probeOut)
		}
		ch <- q
	}()
	return ch
}

// boundOutput trims a failed probe's output to what an event carries.
func boundOutput(s string) string {
	out := strings.TrimSpace(s)
	if len(out) > maxOutput {
		out = strings.ToValidUTF8(out[:maxOutput], "") + "…"
	}
	return out
}
