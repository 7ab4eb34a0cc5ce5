package notify

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/template"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// Target delivers one message.
type Target interface {
	Name() string
	Notify(ctx context.Context, text string) (retry bool, err error)
}

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Runner feeds one target from its own durable consumer: events are
// grouped for GroupWait, routed, filtered by level, rendered, delivered
// with retries, and acked only once the target took them. The stages are
// in stages.go, the consumer in source.go, the sender in send.go.
type Runner struct {
	// ID names the target in events and its durable consumer.
	ID string
	// TargetID, when set, names the target in events instead: on a hub the
	// durable is the host's (<host>_<id>), the events name the bare id.
	TargetID string
	// Default runners take the events of containers without a target of
	// their own; every runner takes the events routed to its ID.
	Default bool
	// Routing gives each event's container its target and level; nil
	// sends every event to the default targets at their level.
	Routing *Routing
	// StartAt is where a consumer created now starts; zero means at new
	// events.
	StartAt time.Time
	// Subjects limit what the consumer reads (a container target's own
	// containers); none reads every event.
	Subjects  []string
	JS        jetstream.JetStream
	Stream    string
	Target    Target
	Level     Level
	Template  *template.Template
	GroupWait time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	Host       string
	Publisher  Publisher
	Log        *slog.Logger
	// Sent is told of each attempt's result; nil drops it.
	Sent func(target, result string)

	// repeats holds back a bug told within the hour.
	repeats repeats
	// pos is the stream sequence of the last event handled (sent, or not
	// for this target) and posTime its time: where a lost consumer resumes.
	pos     uint64
	posTime time.Time
}

// sent counts by the target's id: its name holds a host from a label,
// which is not metric label material.
func (r *Runner) sent(result string) {
	if r.Sent != nil {
		r.Sent(r.ID, result)
	}
}

// ConsumerName is the durable consumer of a target URL: the same URL
// resumes where it stopped, in this process or a split notifier.
func ConsumerName(rawURL string) string { return events.NotifyTargetID(rawURL) }

// Run delivers until ctx ends. A consumer that cannot be made (the stream
// is not there yet, the server is away) is tried again with backoff; one
// that disappears while running is made again where this runner stopped.
func (r *Runner) Run(ctx context.Context) error {
	c, ok := r.consumerRetrying(ctx)
	if !ok || !r.Routing.Wait(ctx) {
		return nil
	}
	r.awaitOrphans(ctx, c)
	for ctx.Err() == nil {
		msgs, err := r.collect(ctx, c)
		if err != nil {
			if c, ok = r.repair(ctx, c, err); !ok {
				return nil
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		r.deliverSafely(ctx, msgs)
	}
	return nil
}

// deliverSafely delivers msgs; if that panics, it delivers them one at a
// time, and a message that panics alone is poisoned: it is terminated, not
// redelivered for ever, and reported as healer.panic.
func (r *Runner) deliverSafely(ctx context.Context, msgs []jetstream.Msg) {
	g := &safe.Guard{Log: r.Log, Pub: r.Publisher, Host: r.Host}
	where := NotifyRunnerWhere + r.ID
	if g.Call(where, func() string { return subjects(msgs) }, func() { r.deliver(ctx, msgs) }) == nil || len(msgs) == 1 && r.term(msgs[0]) {
		return
	}
	for _, m := range msgs {
		if g.Call(where, func() string { return subjects([]jetstream.Msg{m}) }, func() { r.deliver(ctx, []jetstream.Msg{m}) }) != nil {
			r.term(m)
		}
	}
}

// term ends a poisoned message's deliveries; it always reports true.
func (r *Runner) term(m jetstream.Msg) bool {
	if err := m.Term(); err != nil {
		r.Log.Warn("notifier: could not terminate a poisoned message; it comes again after the ack wait", "subject", m.Subject(), "err", err)
	}
	return true
}

func subjects(msgs []jetstream.Msg) string {
	s := make([]string, 0, min(len(msgs), 10))
	for _, m := range msgs[:min(len(msgs), 10)] {
		s = append(s, m.Subject())
	}
	return fmt.Sprintf("%d events: %s", len(msgs), strings.Join(s, " "))
}

// deliver runs one group through the pipeline's stages and sends what the
// target wants; the group is acked once handled, or handed back if the
// runner stops first.
func (r *Runner) deliver(ctx context.Context, msgs []jetstream.Msg) {
	stop := make(chan struct{})
	defer close(stop)
	go keepAliveUntil(stop, msgs)
	got := receivedOf(msgs)
	r.Routing.CatchUp(ctx, newestOf(got))
	rc := r.recipient()
	b := planBatch(got, r.pos, r.posTime, func(e events.Event) bool { return rc.takes(destination(e, r.Routing), e) })
	for _, err := range b.Undecodable {
		r.Log.Warn("notifier: skipping undecodable event", "err", err)
	}
	now := time.Now()
	wanted, held, parts := r.repeats.keep(b.Wanted, now)
	if held > 0 {
		r.Log.Debug("notifier: a bug told within the hour is not told again", "target", r.Target.Name(), "held_back", held)
	}
	if len(wanted) > 0 && !r.send(ctx, wanted, msgs) {
		// Stopping: hand the events back for the next run.
		nak(msgs)
		return
	}
	r.repeats.mark(parts, now)
	// Handled, acked or not: a consumer made again starts after them.
	r.pos, r.posTime = b.Pos, b.PosTime
	r.Log.Debug("notifier: handled events", "target", r.Target.Name(), "events", len(msgs), "wanted", len(b.Wanted), "already_told", b.Stale, "stream_seq", r.pos)
	r.ack(ctx, msgs)
}

// recipient is the runner as the route stage sees it.
func (r *Runner) recipient() recipient {
	return recipient{ID: cmp.Or(r.TargetID, r.ID), Default: r.Default, Level: r.Level}
}
