package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
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
// grouped for GroupWait, filtered by level, rendered, delivered with
// retries, and acked only once the target took them.
type Runner struct {
	// ID names the target in events and its durable consumer.
	ID string
	// TargetID, when set, names the target in events instead: on a hub the
	// durable is the host's (<host>_<id>), the events name the bare id.
	TargetID string
	// Default runners take the events of containers without a target of
	// their own; every runner takes the events that name its ID.
	Default bool
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
	if !ok {
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

// awaitOrphans waits, at start, for events handed out and not acked to be
// handed out again, if no other notifier is reading the consumer: they were
// a killed notifier's, and they come before the newer ones, so the target
// hears everything in order.
func (r *Runner) awaitOrphans(ctx context.Context, c jetstream.Consumer) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := c.Info(ictx)
	cancel()
	if err != nil || info.NumAckPending == 0 || info.NumWaiting > 0 {
		return
	}
	r.Log.Info("notifier: events handed to a notifier that stopped without acking them; waiting for them first, to keep the order",
		"target", r.Target.Name(), "events", info.NumAckPending, "at_most", ackWait)
	sleep(ctx, ackWait)
}

// consumerRetrying gets the consumer, trying again with backoff until it
// works or ctx ends (false).
func (r *Runner) consumerRetrying(ctx context.Context) (jetstream.Consumer, bool) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 500*time.Millisecond, 30*time.Second
	tries := 0
	c, err := backoff.Retry(ctx, func() (jetstream.Consumer, error) {
		tries++
		return r.consumer(ctx)
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, d time.Duration) {
		r.Log.Warn("notifier: cannot make the target's consumer; trying again", "target", r.Target.Name(), "id", r.ID, "err", err, "retry_in", d.Round(time.Millisecond))
	}))
	if err != nil {
		return nil, false
	}
	if tries > 1 {
		r.Log.Info("notifier: the target's consumer is made; delivering", "target", r.Target.Name(), "id", r.ID, "tries", tries)
	}
	return c, true
}

// repair looks at the consumer after a read failed: if it is gone (an
// operator deleted it, an inactivity threshold dropped it, the stream was
// made again), it is made again from the last event this runner handled.
func (r *Runner) repair(ctx context.Context, c jetstream.Consumer, readErr error) (jetstream.Consumer, bool) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	fresh, err := r.JS.Consumer(ictx, r.Stream, r.ID)
	cancel()
	switch {
	case err == nil:
		return fresh, true
	case ctx.Err() != nil:
		return nil, false
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		r.Log.Warn("notifier: the target's durable consumer disappeared; making it again from the last event handled, so none is sent twice",
			"target", r.Target.Name(), "id", r.ID, "stream_seq", r.pos, "read_err", readErr)
		return r.consumerRetrying(ctx)
	default:
		r.Log.Warn("notifier: reading the bus failed; trying again", "target", r.Target.Name(), "err", readErr)
		if !sleep(ctx, time.Second) {
			return nil, false
		}
		return c, true
	}
}

// deliverSafely delivers msgs; if that panics, it delivers them one at a
// time, and a message that panics alone is poisoned: it is terminated, not
// redelivered for ever, and reported as healer.panic.
func (r *Runner) deliverSafely(ctx context.Context, msgs []jetstream.Msg) {
	g := &safe.Guard{Log: r.Log, Pub: r.Publisher, Host: r.Host}
	where := "notify runner " + r.ID
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

// consumer resumes the target's durable consumer, or creates it: after the
// last event this runner handled if it handled any, else at StartAt, else
// at new events.
func (r *Runner) consumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c, err := r.JS.Consumer(ctx, r.Stream, r.ID); err == nil {
		if r.pos == 0 {
			r.pos = c.CachedInfo().AckFloor.Stream
		}
		return r.refilter(ctx, c)
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("notifier: read consumer %s: %w", r.ID, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       r.ID,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 100_000,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: events.SubjectRoot + ".>",
	}
	if len(r.Subjects) > 0 {
		cfg.FilterSubject, cfg.FilterSubjects = "", r.Subjects
	}
	switch {
	case r.pos > 0:
		s, err := r.JS.Stream(ctx, r.Stream)
		if err != nil {
			return nil, fmt.Errorf("notifier: read stream %s: %w", r.Stream, err)
		}
		if s.CachedInfo().State.LastSeq >= r.pos {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.pos+1
		} else {
			// The stream was made again (a wiped data dir): its sequences
			// start over, and what it holds came after what was handled.
			start := r.posTime.Add(time.Nanosecond)
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
			// Positions in the old stream mean nothing in the new one.
			r.pos = 0
			r.Log.Warn("notifier: the stream is new (its sequences start over); resuming after the time of the last event handled", "target", r.Target.Name(), "after", r.posTime)
		}
	case !r.StartAt.IsZero():
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

// refilter brings an existing consumer's filter to r.Subjects.
func (r *Runner) refilter(ctx context.Context, c jetstream.Consumer) (jetstream.Consumer, error) {
	if len(r.Subjects) == 0 {
		return c, nil
	}
	cfg := c.CachedInfo().Config
	if slices.Equal(cfg.FilterSubjects, r.Subjects) && cfg.FilterSubject == "" {
		return c, nil
	}
	cfg.FilterSubject, cfg.FilterSubjects = "", r.Subjects
	c, err := r.JS.UpdateConsumer(ctx, r.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("notifier: narrow consumer %s to its containers: %w", r.ID, err)
	}
	return c, nil
}

// takes says whether this runner delivers e, at which level.
func (r *Runner) takes(e events.Event) bool {
	if e.Data.NotifyTarget == "" && !r.Default || e.Data.NotifyTarget != "" && e.Data.NotifyTarget != cmp.Or(r.TargetID, r.ID) {
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
// A read that fails, or finds nothing for a while, returns the error, so
// that the consumer is looked at: it may be gone.
func (r *Runner) collect(ctx context.Context, c jetstream.Consumer) ([]jetstream.Msg, error) {
	nctx, cancel := context.WithTimeout(ctx, idleCheck)
	first, err := c.Next(jetstream.FetchContext(nctx))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	msgs := []jetstream.Msg{first}
	deadline := time.Now().Add(r.GroupWait)
	for wait := time.Until(deadline); wait > 0 && ctx.Err() == nil; wait = time.Until(deadline) {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(min(wait, keepAlive)))
		if err != nil {
			break
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if time.Until(deadline) > 0 {
			for _, m := range msgs {
				_ = m.InProgress()
			}
		}
	}
	return msgs, nil
}

// ackWait is how long an event handed to a notifier that neither acks it
// nor says it is still at it (a killed one) waits to be handed out again.
// Short, so a notifier started after a kill soon resumes with it; a live
// one says it is still at it every keepAlive.
const (
	ackWait   = 30 * time.Second
	keepAlive = ackWait / 3
)

// idleCheck is how long a read waits for an event before the consumer is
// looked at: one removed without notice sends nothing, not even an error.
const idleCheck = 30 * time.Second

func (r *Runner) deliver(ctx context.Context, msgs []jetstream.Msg) {
	// Still at it: a slow target or retries must not have the events
	// handed to another notifier meanwhile.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	var wanted []events.Event
	stale := 0
	for _, m := range msgs {
		// A consumer made again may start before where this runner is (it
		// was deleted while the acks of the last batch were on their way):
		// what it hands out the first time at or below pos was told.
		if md, err := m.Metadata(); err == nil && r.pos > 0 && md.NumDelivered == 1 && md.Sequence.Stream <= r.pos {
			stale++
			continue
		}
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
	// Handled, acked or not: a consumer made again starts after them.
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil && md.Sequence.Stream > r.pos {
			r.pos, r.posTime = md.Sequence.Stream, md.Timestamp
		}
	}
	r.Log.Debug("notifier: handled events", "target", r.Target.Name(), "events", len(msgs), "wanted", len(wanted), "already_told", stale, "stream_seq", r.pos)
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
	esc := EscapeFor(r.Target)
	text, err := Render(r.Template, evs, esc)
	if err != nil {
		r.Log.Error("notifier: cannot render; sending the event kinds instead", "err", err)
		text = fallback(evs, esc)
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

func fallback(evs []events.Event, esc Escape) string {
	s := ""
	for _, e := range evs {
		s += esc(e.Data.Host+" "+e.Subject) + ": " + string(e.Kind()) + "\n"
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
