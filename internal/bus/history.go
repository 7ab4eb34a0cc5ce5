package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// HistoryStream holds the recent events of each container, one subject per
// container id, bounded per subject: the store the healer's policy state is
// rebuilt from after a restart.
const HistoryStream = "HMD_HISTORY"

// historyRoot is the first token of history subjects.
const historyRoot = "hmd_history"

// HistorySubject is the subject of a container's history on host.
func HistorySubject(host, containerID string) string {
	return historyRoot + "." + events.SanitizeToken(host) + "." + events.SanitizeToken(containerID)
}

// HistoryOptions bound the history.
type HistoryOptions struct {
	// PerContainer is how many events are kept per container.
	PerContainer int
	// MaxAge bounds the history by age.
	MaxAge time.Duration
	// MaxBytes bounds the history of all containers together on disk;
	// 0 is DefaultHistoryMaxBytes. The oldest entries go first.
	MaxBytes int64
	// AfterStore, if set, is called with each history event once it is
	// stored and before the state folding it may be: a fault point for
	// tests that kill the healer between the two.
	AfterStore func(events.Event)
}

// DefaultHistoryMaxBytes bounds the history when HistoryOptions do not.
const DefaultHistoryMaxBytes = 64 << 20

func (b *Bus) ensureHistory(ctx context.Context, o HistoryOptions) (jetstream.Stream, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultHistoryMaxBytes
	}
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              HistoryStream,
		Description:       "HealMyDocker: recent events per container, for rebuilding the healer's state",
		Subjects:          []string{historyRoot + ".>"},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: int64(max(o.PerContainer, 1)),
		MaxAge:            o.MaxAge,
		MaxBytes:          o.MaxBytes,
		Discard:           jetstream.DiscardOld,
		Duplicates:        DedupeWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", HistoryStream, err)
	}
	return s, nil
}

// History appends to the per-container history with expected-sequence
// publishing, so two writers cannot fork a container's history.
type History struct {
	js jetstream.JetStream
	// bus says whether the store is degraded.
	bus  *Bus
	host string
	log  *slog.Logger

	afterStore func(events.Event)

	mu sync.Mutex
	// last is each container's latest history sequence, by container id.
	last map[string]histPos
	// queued counts each container's history events not yet stored.
	queued map[string]int
	// stored is the highest history sequence stored by this writer.
	stored uint64
	// dirty holds the states waiting to be stored, by container id.
	dirty     map[string]stateItem
	stateWake chan struct{}
	stateErr  string
	// folded is the watermark last stored (the state writer's own).
	folded uint64
	q      *Publisher
}

// OpenHistory creates the history stream and the state bucket if need be.
// It reads neither: LoadStates and ReadHistory do, at start. With the store
// degraded they read nothing, and what is published and saved is queued
// until the store is back.
func (b *Bus) OpenHistory(ctx context.Context, host string, o HistoryOptions, log *slog.Logger) (*History, error) {
	h := &History{js: b.js, bus: b, host: host, log: log, afterStore: o.AfterStore,
		last: map[string]histPos{}, queued: map[string]int{}, dirty: map[string]stateItem{}, stateWake: make(chan struct{}, 1)}
	// No linger: a restart decision is written ahead of the restart, so a
	// healer killed right after it still knows.
	h.q = NewPublisher(b.js, 0, 0, log)
	h.q.store = h.storeBatch
	h.q.Attach(b)
	err := b.addStream(ctx, streamSpec{name: HistoryStream, ensure: func(ctx context.Context) error {
		_, err := b.ensureHistory(ctx, o)
		return err
	}})
	if err == nil {
		err = b.addStream(ctx, streamSpec{name: stateStream, ensure: func(ctx context.Context) error {
			return b.ensureStates(ctx, o.MaxAge)
		}})
	}
	if b.Down() != nil {
		log.Warn("no history or states to rebuild the state from: the store is degraded; healing from Docker's state alone", "reason", b.Down())
		return h, nil
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Publish queues e for its container's history. It never blocks.
func (h *History) Publish(e events.Event) {
	if e.Data.ContainerID == "" {
		return
	}
	h.mu.Lock()
	h.queued[e.Data.ContainerID]++
	h.mu.Unlock()
	h.q.Publish(e)
}

// Run stores queued history and states until ctx ends, then flushes.
func (h *History) Run(ctx context.Context) error {
	histDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { h.runStates(ctx, histDone, 10*time.Second) })
	err := h.q.Run(ctx, 10*time.Second)
	// The last states wait for the last history.
	close(histDone)
	wg.Wait()
	return err
}

// Unstored is how many entries were still queued when Run returned.
func (h *History) Unstored() int { return h.q.Unstored() }

// Dropped is how many history entries were dropped, ever: beyond the
// queue bound while the store was down, or not stored at shutdown.
func (h *History) Dropped() uint64 { return h.q.Dropped() }

// Healthy reports the last store error.
func (h *History) Healthy() error {
	if err := h.q.Healthy(); err != nil {
		return err
	}
	return h.StatesHealthy()
}

// storeBatch publishes a batch with pipelined acks. The first event of each
// container in the batch expects the subject's last sequence to be the one
// this writer knows, if it knows it; the rest follow it in order. On a mismatch another writer appended: it
// logs, learns the new last sequence, and fails so the events are retried
// on top (ids make the retry idempotent).
func (h *History) storeBatch(ctx context.Context, batch []events.Event) (int, error) {
	futures := make([]jetstream.PubAckFuture, len(batch))
	inBatch := map[string]bool{}
	for i, e := range batch {
		b, err := events.Marshal(e)
		if err != nil {
			h.log.Error("dropping history event that cannot be encoded", "id", e.ID, "err", err)
			h.stored1(e, 0)
			continue
		}
		id := e.Data.ContainerID
		subj := HistorySubject(e.Data.Host, id)
		m := nats.NewMsg(subj)
		m.Data = b
		m.Header.Set(nats.MsgIdHdr, e.ID)
		if !inBatch[id] {
			inBatch[id] = true
			if last, known := h.position(id); known {
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
			}
		}
		f, err := h.js.PublishMsgAsync(m)
		if err != nil {
			return h.settle(ctx, batch[:i], futures[:i], fmt.Errorf("history of %s: %w", e.Data.Container, err))
		}
		futures[i] = f
	}
	return h.settle(ctx, batch, futures, nil)
}

// position is the container's last history sequence, if this writer knows
// it from the stream (an ack, or a refusal's re-read). An unknown one (the
// first write of a container after a start: a stored state's sequence may
// lag the subject) is not asked of the stream, which would cost a request
// per container in a burst: that write goes unguarded, and its ack tells.
func (h *History) position(id string) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.last[id]
	return p.seq, p.exact
}

// reread learns a container's last history sequence from the stream after
// a refusal.
func (h *History) reread(ctx context.Context, id, subj string) {
	st, err := h.js.Stream(ctx, HistoryStream)
	if err != nil {
		return
	}
	var seq uint64
	lm, err := st.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		seq = lm.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return
	}
	h.mu.Lock()
	h.last[id] = histPos{seq: seq, exact: true}
	h.mu.Unlock()
}

// stored1 records that e is stored at seq (0: dropped), after the test
// fault point, and lets its container's state be written.
func (h *History) stored1(e events.Event, seq uint64) {
	if seq > 0 && h.afterStore != nil {
		h.afterStore(e)
	}
	id := e.Data.ContainerID
	h.mu.Lock()
	if seq > 0 {
		if seq > h.last[id].seq {
			h.last[id] = histPos{seq: seq, exact: true}
		}
		h.stored = max(h.stored, seq)
	}
	if h.queued[id]--; h.queued[id] <= 0 {
		delete(h.queued, id)
	}
	h.mu.Unlock()
	h.wakeStates()
}

// settle waits for the acks of futures, recording each stored event as
// its ack comes, and returns how many of the first are stored, with the
// first error: a store's, else perr (the publish that cut the batch short).
func (h *History) settle(ctx context.Context, batch []events.Event, futures []jetstream.PubAckFuture, perr error) (int, error) {
	what := func(i int) string { return "history of " + batch[i].Data.Container }
	onAck := func(i int, ack *jetstream.PubAck) { h.stored1(batch[i], ack.Sequence) }
	i, err := awaitAcks(ctx, futures, what, onAck)
	if err == nil {
		return len(futures), perr
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		id := batch[i].Data.ContainerID
		h.log.Error("another writer appended to this container's history; re-reading its position", "container_id", id)
		h.reread(ctx, id, HistorySubject(batch[i].Data.Host, id))
	}
	return i, err
}

// Pending is the number of events not yet stored.
func (h *History) Pending() int { return h.q.Pending() }
