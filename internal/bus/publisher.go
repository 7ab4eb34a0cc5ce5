package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Publisher records events in JetStream off the caller's path: Publish only
// appends to a queue, and Run moves the queue into the stream in order,
// retrying until each event is stored. Ids make retries idempotent.
type Publisher struct {
	js     jetstream.JetStream
	log    *slog.Logger
	max    int
	linger time.Duration

	mu    sync.Mutex
	queue []events.Event
	wake  chan struct{}
	// kick cuts a retry's wait short: the store is back.
	kick chan struct{}
	// store is the bus whose state gates the writes, once attached.
	bus *Bus
	// urgent cuts a linger short: decisions and outcomes are what a
	// healer killed mid-burst must not lose.
	urgent chan struct{}
	// dropped counts events dropped since the last log line about it;
	// droppedTotal since the start, for the metric.
	dropped      int
	droppedTotal uint64
	// unstored is what was left in the queue at shutdown.
	unstored int
	// lastErr is the error of the latest failed store, "" once one succeeds.
	lastErr string
	// store moves a batch into JetStream and says how many of its first
	// events are stored.
	store func(context.Context, []events.Event) (int, error)
}

// DefaultLinger is how long the event publisher waits after the first event
// of a burst, so the burst goes out as one batch after the restart requests
// that caused it: on a small host the daemon needs the CPU more than the
// store does just then. A decision or an outcome ends the wait: a healer
// killed within it would lose them from the stream.
const DefaultLinger = 250 * time.Millisecond

// NewPublisher returns a publisher holding at most max unstored events in
// memory (past that the oldest are dropped, loudly), that waits linger
// after the first event of a burst before storing it.
func NewPublisher(js jetstream.JetStream, max int, linger time.Duration, log *slog.Logger) *Publisher {
	if max <= 0 {
		max = 100_000
	}
	p := &Publisher{js: js, log: log, max: max, linger: linger, wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
	p.store = p.storeAsync
	return p
}

// Publish queues e. It never blocks.
func (p *Publisher) Publish(e events.Event) {
	p.mu.Lock()
	if len(p.queue) >= p.max {
		p.queue = p.queue[1:]
		if p.dropped == 0 {
			p.log.Error("event queue full while the store is failing: dropping the oldest events; counted in hmd_events_dropped_total", "max", p.max)
		}
		p.dropped++
		p.droppedTotal++
	}
	p.queue = append(p.queue, e)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if c := e.Kind().Category(); c == "decision" || c == "outcome" {
		select {
		case p.urgent <- struct{}{}:
		default:
		}
	}
}

// Pending is the number of events not yet stored.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Attach makes the publisher wait for b's store while it is degraded
// instead of trying writes, tell b of storage errors, and retry as soon as
// the store is back.
func (p *Publisher) Attach(b *Bus) {
	p.bus = b
	go func() {
		for {
			select {
			case <-b.stop:
				return
			case <-b.Changed():
			}
			if b.Down() == nil {
				select {
				case p.kick <- struct{}{}:
				default:
				}
			}
		}
	}()
}

// Dropped is how many events were dropped, ever: beyond the queue bound
// while the store failed, or not stored at shutdown.
func (p *Publisher) Dropped() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.droppedTotal
}

// Healthy reports the last store error, if the latest attempt failed.
func (p *Publisher) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastErr != "" {
		return errors.New(p.lastErr)
	}
	return nil
}

// Run stores queued events until ctx ends, then flushes what is left for
// up to flushTimeout (not at all with the store down). What is still
// queued then is counted as dropped; Unstored says how many.
func (p *Publisher) Run(ctx context.Context, flushTimeout time.Duration) error {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			defer cancel()
			for p.Pending() > 0 && fctx.Err() == nil && p.storeDown() == nil {
				p.flush(fctx)
			}
			p.mu.Lock()
			p.unstored = len(p.queue)
			p.droppedTotal += uint64(len(p.queue))
			p.queue = nil
			p.mu.Unlock()
			return nil
		case <-p.wake:
			if p.linger > 0 {
				select {
				case <-ctx.Done():
				case <-p.urgent:
				case <-time.After(p.linger):
				}
			}
			// Drain a signal this flush covers.
			select {
			case <-p.urgent:
			default:
			}
			p.flush(ctx)
		}
	}
}

// Unstored is how many events were still queued when Run returned.
func (p *Publisher) Unstored() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unstored
}

func (p *Publisher) storeDown() error {
	if p.bus == nil {
		return nil
	}
	return p.bus.Down()
}

// batchSize bounds how many async publishes are outstanding at once.
const batchSize = 256

// flush stores the queue, retrying with backoff while the store fails,
// until it is empty or ctx ends. The store coming back cuts a wait short.
func (p *Publisher) flush(ctx context.Context) {
	_ = retryKicked(ctx, p.kick, storeBackoff(), func() error { return p.storeQueued(ctx) })
}

// storeQueued stores the queue a batch at a time, until it is empty or a
// batch fails.
func (p *Publisher) storeQueued(ctx context.Context) error {
	for {
		p.mu.Lock()
		n := min(len(p.queue), batchSize)
		batch := append([]events.Event(nil), p.queue[:n]...)
		p.mu.Unlock()
		if n == 0 {
			return nil
		}
		stored, err := 0, p.storeDown()
		if err != nil {
			err = fmt.Errorf("store degraded: %w", err)
		} else {
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			stored, err = p.store(sctx, batch)
			cancel()
			if err != nil && p.bus != nil {
				p.bus.StoreFailed(err)
			}
		}
		if err != nil && ctx.Err() != nil {
			// Shutting down: Run flushes again with its own deadline.
			p.mu.Lock()
			p.queue = p.queue[min(stored, len(p.queue)):]
			p.mu.Unlock()
			return backoff.Permanent(err)
		}
		p.mu.Lock()
		// Only the stored prefix leaves the queue, so order is kept.
		p.queue = p.queue[min(stored, len(p.queue)):]
		if len(p.queue) == 0 {
			// Let go of the burst's array: a slice emptied from the front
			// still holds all of it.
			p.queue = nil
		}
		if err != nil {
			msg := err.Error()
			if msg != p.lastErr {
				p.log.Error("storing events in jetstream failed; keeping them queued and retrying", "err", err, "pending", len(p.queue))
			}
			p.lastErr = msg
		} else if p.lastErr != "" {
			p.log.Info("storing events in jetstream works again", "pending", len(p.queue), "dropped", p.dropped)
			p.lastErr = ""
			p.dropped = 0
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// storeAsync publishes batch with pipelined acks and returns how many of
// its first events are stored.
func (p *Publisher) storeAsync(ctx context.Context, batch []events.Event) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, e := range batch {
		msg, err := Message(e)
		if err != nil {
			// An event that cannot be encoded would block the queue forever.
			p.log.Error("dropping event that cannot be encoded", "id", e.ID, "err", err)
			futures = append(futures, nil)
			continue
		}
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			return p.settle(ctx, futures, fmt.Errorf("publish %s: %w", e.ID, err))
		}
		futures = append(futures, f)
	}
	return p.settle(ctx, futures, nil)
}

// settle waits for the acks of futures and returns how many of the first
// are stored, with the first error: a store's, else perr (the publish that
// cut the batch short).
func (p *Publisher) settle(ctx context.Context, futures []jetstream.PubAckFuture, perr error) (int, error) {
	what := func(i int) string { return "store " + futures[i].Msg().Header.Get(nats.MsgIdHdr) }
	if i, err := awaitAcks(ctx, futures, what, nil); err != nil {
		return i, err
	}
	return len(futures), perr
}

// Message is the NATS message of e, with its id as Nats-Msg-Id.
func Message(e events.Event) (*nats.Msg, error) {
	b, err := events.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	m := nats.NewMsg(e.NATSSubject())
	m.Header.Set(nats.MsgIdHdr, e.ID)
	m.Header.Set("Content-Type", "application/cloudevents+json")
	m.Data = b
	return m, nil
}
