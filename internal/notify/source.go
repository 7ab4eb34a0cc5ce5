package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// The source end of the pipeline: the target's durable JetStream consumer,
// made, resumed and repaired here, and read a group at a time.

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
	// Said each time, so that an operator (or a test) knows from when on
	// events reach the target: a new consumer starts at new events.
	info := c.CachedInfo()
	r.Log.Info("notifier: delivering", "target", r.Target.Name(), "id", r.ID, "stream", r.Stream,
		"after_stream_seq", info.AckFloor.Stream, "pending", info.NumPending+uint64(info.NumAckPending), "tries", tries)
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
	// A read waiting on a durable hears "consumer deleted" before the
	// server has removed the durable's stored state; made again in that
	// moment, the durable comes back with that state (an older ack floor,
	// events pending, handed out again at once) instead of after pos. Made
	// after pos, its ack floor is pos; below it, delete it and make it again.
	if floor := c.CachedInfo().AckFloor.Stream; r.pos > 0 && floor < r.pos {
		r.Log.Warn("notifier: the durable made again came back with the deleted one's state; deleting it to make it afresh, so none is sent twice",
			"target", r.Target.Name(), "id", r.ID, "ack_floor", floor, "stream_seq", r.pos, "ack_pending", c.CachedInfo().NumAckPending)
		if err := r.JS.DeleteConsumer(ctx, r.Stream, r.ID); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("notifier: delete consumer %s made with an old state: %w", r.ID, err)
		}
		return nil, fmt.Errorf("notifier: consumer %s came back with an ack floor of %d, before %d", r.ID, floor, r.pos)
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
	// A group gathered for long says it is still at its messages every half
	// keepAlive, not after each batch: a backlog comes a thousand at a time,
	// and telling every message again each time was quadratic. A batch waits
	// at most keepAlive, and deliver's own keepAlive starts as this ends, so
	// none goes past the ack wait (15 s + 10 s < 30 s).
	kept := time.Now()
	for wait := time.Until(deadline); wait > 0 && ctx.Err() == nil; wait = time.Until(deadline) {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(min(wait, keepAlive)))
		if err != nil {
			break
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if time.Since(kept) >= keepAlive/2 && time.Until(deadline) > 0 {
			inProgress(msgs)
			kept = time.Now()
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

// sleep waits d, or until ctx ends (false).
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

// receivedOf reads what the pipeline's stages need of msgs.
func receivedOf(msgs []jetstream.Msg) []received {
	out := make([]received, len(msgs))
	for i, m := range msgs {
		out[i] = received{Subject: m.Subject(), Data: m.Data()}
		if md, err := m.Metadata(); err == nil {
			out[i].Meta, out[i].Seq, out[i].Time, out[i].Delivered = true, md.Sequence.Stream, md.Timestamp, md.NumDelivered
		}
	}
	return out
}

// newestOf is when the newest of got was stored; zero if none says.
func newestOf(got []received) time.Time {
	var newest time.Time
	for _, m := range got {
		if m.Meta && m.Time.After(newest) {
			newest = m.Time
		}
	}
	return newest
}

// keepAlive tells the server, every keepAlive until stop is closed, that
// msgs are still being handled: a slow target or retries must not have
// them handed to another notifier meanwhile.
func keepAliveUntil(stop <-chan struct{}, msgs []jetstream.Msg) {
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			inProgress(msgs)
		}
	}
}

func inProgress(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// nak hands msgs back for the next run.
func nak(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// ack acks msgs, waiting for the server to confirm: an ack still in flight
// when the notifier stops would have the next run send the same events
// again.
func (r *Runner) ack(ctx context.Context, msgs []jetstream.Msg) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, m := range msgs {
		if err := m.DoubleAck(actx); err != nil {
			r.Log.Warn("notifier: ack not confirmed; the event may be sent again", "target", r.Target.Name(), "err", err)
		}
	}
}
