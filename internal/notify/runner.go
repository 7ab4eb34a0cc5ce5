package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
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
// grouped for GroupWait, filtered by level, rendered, delivered with
// retries, and acked only once the target took them.
type Runner struct {
	// ID names the target in events and its durable consumer.
	ID string
	// Default runners take the events of containers without a target of
	// their own; every runner takes the events that name its ID.
	Default bool
	// StartAt is where a consumer created now starts; zero means at new
	// events.
	StartAt   time.Time
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
}

func (r *Runner) sent(result string) {
	if r.Sent != nil {
		r.Sent(r.Target.Name(), result)
	}
}

// ConsumerName is the durable consumer of a target URL: the same URL
// resumes where it stopped, in this process or a split notifier.
func ConsumerName(rawURL string) string { return events.NotifyTargetID(rawURL) }

// Run delivers until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	c, err := r.consumer(ctx)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		msgs := r.collect(ctx, c)
		if len(msgs) == 0 {
			continue
		}
		r.deliver(ctx, msgs)
	}
	return nil
}

// consumer resumes the target's durable consumer, or creates it.
func (r *Runner) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if c, err := r.JS.Consumer(ctx, r.Stream, r.ID); err == nil {
		return c, nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("notifier: read consumer %s: %w", r.ID, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       r.ID,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 100_000,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: events.SubjectRoot + ".>",
	}
	if !r.StartAt.IsZero() {
		start := r.StartAt
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	c, err := r.JS.CreateConsumer(ctx, r.Stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		// Another notifier made it first, the same or with another start.
		return r.JS.Consumer(ctx, r.Stream, r.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("notifier: create consumer %s: %w", r.ID, err)
	}
	return c, nil
}

// takes says whether this runner delivers e, at which level.
func (r *Runner) takes(e events.Event) bool {
	if e.Data.NotifyTarget == "" && !r.Default || e.Data.NotifyTarget != "" && e.Data.NotifyTarget != r.ID {
		return false
	}
	level := r.Level
	if e.Data.NotifyLevel != "" {
		if l, err := ParseLevel(e.Data.NotifyLevel); err == nil {
			level = l
		}
	}
	return Wants(level, e)
}

// collect waits for one event, then gathers what comes within GroupWait.
func (r *Runner) collect(ctx context.Context, c jetstream.Consumer) []jetstream.Msg {
	first, err := c.Next(jetstream.FetchContext(ctx))
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			r.Log.Warn("notifier: reading the bus failed; trying again", "target", r.Target.Name(), "err", err)
			sleep(ctx, time.Second)
		}
		return nil
	}
	msgs := []jetstream.Msg{first}
	deadline := time.Now().Add(r.GroupWait)
	for wait := time.Until(deadline); wait > 0 && ctx.Err() == nil; wait = time.Until(deadline) {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(wait))
		if err != nil {
			break
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func (r *Runner) deliver(ctx context.Context, msgs []jetstream.Msg) {
	var wanted []events.Event
	for _, m := range msgs {
		e, err := events.Unmarshal(m.Data())
		if err != nil {
			r.Log.Warn("notifier: skipping undecodable event", "subject", m.Subject(), "err", err)
			continue
		}
		if r.takes(e) {
			wanted = append(wanted, e)
		}
	}
	if len(wanted) > 0 && !r.send(ctx, wanted, msgs) {
		// Stopping: hand the events back for the next run.
		for _, m := range msgs {
			_ = m.Nak()
		}
		return
	}
	// Confirmed acks: an ack still in flight when the notifier stops would
	// have the next run send the same events again.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, m := range msgs {
		if err := m.DoubleAck(actx); err != nil {
			r.Log.Warn("notifier: ack not confirmed; the event may be sent again", "target", r.Target.Name(), "err", err)
		}
	}
}

// send delivers one message for evs, retrying what may get better. It
// returns false only when ctx ended first.
func (r *Runner) send(ctx context.Context, evs []events.Event, msgs []jetstream.Msg) bool {
	text, err := Render(r.Template, evs)
	if err != nil {
		r.Log.Error("notifier: cannot render; sending the event kinds instead", "err", err)
		text = fallback(evs)
	}
	backoff, lastErr := time.Second, ""
	for attempt := 1; ; attempt++ {
		// A send under way finishes even when the notifier stops: cut off,
		// the target may have taken the message without our knowing, and
		// the next run would send it again.
		retry, err := r.Target.Notify(context.WithoutCancel(ctx), text)
		switch {
		case err == nil:
			r.sent("ok")
		case !retry:
			r.sent("refused")
		default:
			r.sent("error")
		}
		if err == nil {
			if lastErr != "" {
				r.Log.Info("notifier: delivered after retries", "target", r.Target.Name(), "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retry {
			r.Log.Error("notifier: target refused the message; not retrying", "target", r.Target.Name(), "err", err, "events", len(evs))
			r.Publisher.Publish(events.New(events.NotifyFailed, uuid.NewString(), time.Now(), "", events.Data{
				Host: r.Host, Error: err.Error(), Reason: r.Target.Name(),
			}))
			return true
		}
		if err.Error() != lastErr {
			r.Log.Warn("notifier: delivery failed; retrying", "target", r.Target.Name(), "attempt", attempt, "err", err, "retry_in", backoff)
			lastErr = err.Error()
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(backoff*2, max(r.MaxBackoff, time.Second))
	}
}

func fallback(evs []events.Event) string {
	s := ""
	for _, e := range evs {
		s += e.Data.Host + " " + e.Subject + ": " + string(e.Kind()) + "\n"
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
