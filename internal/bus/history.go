package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
		Duplicates:        10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", HistoryStream, err)
	}
	return s, nil
}

// History appends to the per-container history with expected-sequence
// publishing, so two writers cannot fork a container's history.
type History struct {
	js   jetstream.JetStream
	host string
	log  *slog.Logger

	mu   sync.Mutex
	last map[string]uint64 // subject -> stream sequence of its last message
	q    *Publisher
}

// OpenHistory creates the stream if need be and reads it whole: the
// history per container id, oldest first. With the store degraded it
// returns no history, and queues what is published until the store is back.
func (b *Bus) OpenHistory(ctx context.Context, host string, o HistoryOptions, log *slog.Logger) (*History, map[string][]events.Event, error) {
	h := &History{js: b.js, host: host, log: log, last: map[string]uint64{}}
	// No linger: a restart decision is written ahead of the restart, so a
	// healer killed right after it still knows.
	h.q = NewPublisher(b.js, 0, 0, log)
	h.q.store = h.storeOne
	h.q.Attach(b)
	byID := map[string][]events.Event{}
	err := b.addStream(ctx, streamSpec{name: HistoryStream, ensure: func(ctx context.Context) error {
		_, err := b.ensureHistory(ctx, o)
		return err
	}})
	if b.Down() != nil {
		log.Warn("no history to rebuild the state from: the store is degraded; healing from Docker's state alone", "reason", b.Down())
		return h, byID, nil
	}
	if err != nil {
		return nil, nil, err
	}
	s, err := b.js.Stream(ctx, HistoryStream)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	if byID, err = h.load(ctx, s); err != nil {
		return nil, nil, err
	}
	return h, byID, nil
}

func (h *History) load(ctx context.Context, s jetstream.Stream) (map[string][]events.Event, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	byID := map[string][]events.Event{}
	if info.State.Msgs == 0 {
		return byID, nil
	}
	prefix := historyRoot + "." + events.SanitizeToken(h.host) + "."
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + "*"}})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	for {
		batch, err := c.FetchNoWait(4096)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", HistoryStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", HistoryStream, err)
			}
			h.last[m.Subject()] = md.Sequence.Stream
			e, err := events.Unmarshal(m.Data())
			if err != nil {
				h.log.Warn("skipping undecodable history entry", "subject", m.Subject(), "seq", md.Sequence.Stream, "err", err)
				continue
			}
			id := strings.TrimPrefix(m.Subject(), prefix)
			byID[id] = append(byID[id], e)
			if md.NumPending == 0 {
				return byID, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read %s: %w", HistoryStream, err)
		}
		if n == 0 {
			return byID, nil
		}
	}
}

// Publish queues e for its container's history. It never blocks.
func (h *History) Publish(e events.Event) {
	if e.Data.ContainerID == "" {
		return
	}
	h.q.Publish(e)
}

// Run stores queued history until ctx ends, then flushes.
func (h *History) Run(ctx context.Context) error { return h.q.Run(ctx, 10*time.Second) }

// Unstored is how many entries were still queued when Run returned.
func (h *History) Unstored() int { return h.q.Unstored() }

// Dropped is how many history entries were dropped, ever: beyond the
// queue bound while the store was down, or not stored at shutdown.
func (h *History) Dropped() uint64 { return h.q.Dropped() }

// Healthy reports the last store error.
func (h *History) Healthy() error { return h.q.Healthy() }

// storeOne publishes a batch with pipelined acks. The first event of each
// container in the batch expects the subject's last sequence to be the one
// this writer saw; the rest follow it in order. On a mismatch another writer
// appended: it logs, learns the new last sequence, and fails so the events
// are retried on top (ids make the retry idempotent).
func (h *History) storeOne(ctx context.Context, batch []events.Event) (int, error) {
	futures := make([]jetstream.PubAckFuture, len(batch))
	subjects := make([]string, len(batch))
	inBatch := map[string]bool{}
	for i, e := range batch {
		b, err := events.Marshal(e)
		if err != nil {
			h.log.Error("dropping history event that cannot be encoded", "id", e.ID, "err", err)
			continue
		}
		subj := HistorySubject(e.Data.Host, e.Data.ContainerID)
		subjects[i] = subj
		m := nats.NewMsg(subj)
		m.Data = b
		m.Header.Set(nats.MsgIdHdr, e.ID)
		if !inBatch[subj] {
			inBatch[subj] = true
			h.mu.Lock()
			last := h.last[subj]
			h.mu.Unlock()
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
		}
		f, err := h.js.PublishMsgAsync(m)
		if err != nil {
			return h.settle(ctx, batch[:i], futures[:i], subjects[:i], fmt.Errorf("history of %s: %w", e.Data.Container, err))
		}
		futures[i] = f
	}
	return h.settle(ctx, batch, futures, subjects, nil)
}

func (h *History) settle(ctx context.Context, batch []events.Event, futures []jetstream.PubAckFuture, subjects []string, perr error) (int, error) {
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if !ack.Duplicate {
				h.mu.Lock()
				h.last[subjects[i]] = max(h.last[subjects[i]], ack.Sequence)
				h.mu.Unlock()
			}
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				h.log.Error("another writer appended to this container's history; re-reading its position", "subject", subjects[i])
				if st, gerr := h.js.Stream(ctx, HistoryStream); gerr == nil {
					if lm, lerr := st.GetLastMsgForSubject(ctx, subjects[i]); lerr == nil {
						h.mu.Lock()
						h.last[subjects[i]] = lm.Sequence
						h.mu.Unlock()
					}
				}
			}
			return i, fmt.Errorf("history of %s: %w", batch[i].Data.Container, err)
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(futures), perr
}

// Pending is the number of events not yet stored.
func (h *History) Pending() int { return h.q.Pending() }
