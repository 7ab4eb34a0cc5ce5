package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
)

// CheckHistory is what the event history says of one container.
type CheckHistory struct {
	// Source is where it was read: the listener or the data dir.
	Source string `json:"source,omitempty"`
	// Unavailable says why it could not be read.
	Unavailable string         `json:"unavailable,omitempty"`
	Events      []events.Event `json:"events,omitempty"`
	// Latest is the latest restart decision's account of the container.
	Latest *CheckLatest `json:"latest,omitempty"`
	// State is the healer's own account, folded from the whole history by
	// the code that decides.
	State *heal.State `json:"state,omitempty"`
	// Next says what the healer would do if the container turned
	// unhealthy now: Decide on the State, as the healer would.
	Next *CheckNext `json:"next,omitempty"`
}

// CheckNext is the healer's answer to "if it turned unhealthy now?".
type CheckNext struct {
	// Verdict is restart, skip (until At, when set) or give_up.
	Verdict string     `json:"verdict"`
	Reason  string     `json:"reason,omitempty"`
	At      *time.Time `json:"at,omitempty"`
}

// NextRestart asks the decision function what it would do with an
// unhealthy event for a container in state s under policy p at now.
func NextRestart(s heal.State, p config.Policy, now time.Time) *CheckNext {
	d := heal.Decide(s, heal.Observation{Observed: events.Observed{Kind: events.DockerUnhealthy}}, p, now)
	n := &CheckNext{Verdict: d.Verdict.String(), Reason: d.Reason}
	if !d.RetryAt.IsZero() {
		at := d.RetryAt
		n.At = &at
	}
	return n
}

// CheckLatest is read from the latest decision event: restarts in the
// frame, given up, and when it is looked at again.
type CheckLatest struct {
	Kind          events.Kind `json:"kind"`
	Time          time.Time   `json:"time"`
	Reason        string      `json:"reason,omitempty"`
	Attempt       int         `json:"attempt,omitempty"`
	FrameRestarts int         `json:"frame_restarts,omitempty"`
	GaveUp        bool        `json:"gave_up"`
	RetryAt       *time.Time  `json:"retry_at,omitempty"`
}

// historyShown is how many of a container's events check prints.
const historyShown = 15

func readHistory(ctx context.Context, cfg config.Config, dd CheckDataDir, name string, log *slog.Logger) CheckHistory {
	var h CheckHistory
	if cfg.NATSURL == "" && dd.Locked {
		h.Unavailable = fmt.Sprintf("a healer is running on %s (pid %s) and no --nats-url was given: its history is read through its NATS listener (nats_listen on the healer, --nats-url and credentials here)", dd.Path, dd.PID)
		return h
	}
	if cfg.NATSURL == "" && !dd.Exists {
		h.Unavailable = "no data dir, so no history yet"
		return h
	}
	h.Source = "data dir " + dd.Path
	if cfg.NATSURL != "" {
		h.Source = "NATS listener"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	js, closeFn, err := openEvents(ctx, cfg, log)
	if err != nil {
		h.Unavailable = err.Error()
		return h
	}
	defer closeFn()
	evs, err := containerEvents(ctx, js, cfg.EventsStream, name)
	if err != nil {
		h.Unavailable = err.Error()
		return h
	}
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		switch e.Kind() {
		case events.RestartRequested, events.RestartSkipped, events.GaveUp:
			h.Latest = &CheckLatest{Kind: e.Kind(), Time: e.Time, Reason: e.Data.Reason, Attempt: e.Data.Attempt,
				FrameRestarts: e.Data.FrameRestarts, GaveUp: e.Kind() == events.GaveUp, RetryAt: e.Data.RetryAt}
		}
		if h.Latest != nil {
			break
		}
	}
	st := heal.FoldAll(evs)
	h.State = &st
	if len(evs) > historyShown {
		evs = evs[len(evs)-historyShown:]
	}
	h.Events = evs
	return h
}

// containerEvents reads every stored event of one container, oldest first.
func containerEvents(ctx context.Context, js jetstream.JetStream, stream, name string) ([]events.Event, error) {
	filter := events.SubjectRoot + ".*." + events.SanitizeToken(name) + ".>"
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("read the events stream %s: %w", stream, err)
	}
	var out []events.Event
	for {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := c.Next(jetstream.FetchContext(nctx))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded):
			return out, nil
		case err != nil:
			return out, fmt.Errorf("read the events stream: %w", err)
		}
		if e, err := events.Unmarshal(m.Data()); err == nil && e.Subject == name {
			out = append(out, e)
		}
		if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
			return out, nil
		}
	}
}
