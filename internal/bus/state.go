package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// StateBucket holds each container's folded state, one key per container
// (<host>.<container id>): start-up reads one message per container
// instead of the whole history. A state is written once the history events
// it folds are stored, with the history sequence it folds up to, so a
// healer killed between the two loses nothing: the next start folds the
// history stored after it.
const StateBucket = "HMD_STATE"

const (
	stateStream  = "KV_" + StateBucket
	stateSubject = "$KV." + StateBucket + "."
	// foldedKey, under the host's prefix, is the watermark: every history
	// event of the host up to this sequence is folded into a stored state.
	// Container ids never start with an underscore.
	foldedKey = "_folded"
	// stateMaxBytes bounds the bucket: at a few hundred bytes a state,
	// tens of thousands of containers. At or under 32 MB, the store uses
	// 4 MB blocks (8 MB above), and so 4 MB write buffers.
	stateMaxBytes = 16 << 20
)

// StoredState is one container's state as stored: the state's JSON and the
// sequence of the latest history event folded into it.
type StoredState struct {
	Seq   uint64          `json:"seq"`
	State json.RawMessage `json:"state"`
}

// storedValue is what the writer encodes; State is the healer's value.
type storedValue struct {
	Seq   uint64 `json:"seq"`
	State any    `json:"state"`
}

type stateItem struct {
	v      any
	forget bool
}

// histPos is a container's latest history sequence; exact when read from
// the stream or an ack, not from a stored state (which may lag the
// subject by events that changed nothing).
type histPos struct {
	seq   uint64
	exact bool
}

func (b *Bus) ensureStates(ctx context.Context, maxAge time.Duration) error {
	_, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "HealMyDocker: each container's folded state, for a fast start-up",
		Storage:     jetstream.FileStorage,
		History:     1,
		MaxBytes:    stateMaxBytes,
		TTL:         maxAge,
	})
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", StateBucket, err)
	}
	return nil
}

func (h *History) stateKey(id string) string {
	return events.SanitizeToken(h.host) + "." + events.SanitizeToken(id)
}

// LoadStates reads every stored state of this host, one message per
// container, and the watermark; found is false for a data dir that has
// none yet (an older version's, or a new one).
func (h *History) LoadStates(ctx context.Context) (states map[string]StoredState, folded uint64, found bool, err error) {
	if h.bus != nil && h.bus.Down() != nil {
		return map[string]StoredState{}, 0, true, nil
	}
	s, err := h.js.Stream(ctx, stateStream)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read %s: %w", StateBucket, err)
	}
	states = map[string]StoredState{}
	if s.CachedInfo().State.Msgs == 0 {
		return states, 0, false, nil
	}
	prefix := stateSubject + events.SanitizeToken(h.host) + "."
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + "*"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return nil, 0, false, fmt.Errorf("read %s: %w", StateBucket, err)
	}
	err = fetchAll(c, func(m jetstream.Msg, seq uint64) error {
		if op := m.Headers().Get("KV-Operation"); op != "" {
			return nil
		}
		key := strings.TrimPrefix(m.Subject(), prefix)
		var st StoredState
		if err := json.Unmarshal(m.Data(), &st); err != nil {
			h.log.Warn("skipping undecodable stored state; the container starts from its history after the watermark", "key", key, "seq", seq, "err", err)
			return nil
		}
		if key == foldedKey {
			folded, found = st.Seq, true
			return nil
		}
		states[key] = st
		return nil
	})
	if err != nil {
		return nil, 0, false, fmt.Errorf("read %s: %w", StateBucket, err)
	}
	h.folded = folded
	return states, folded, found, nil
}

// fetchAll hands every message of an ordered consumer to f, until none is
// pending.
func fetchAll(c jetstream.Consumer, f func(jetstream.Msg, uint64) error) error {
	for {
		batch, err := c.FetchNoWait(4096)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if err := f(m, md.Sequence.Stream); err != nil {
				return err
			}
			if md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// ReadHistory hands f this host's history events stored after sequence
// after, oldest first, with their sequence and container id.
func (h *History) ReadHistory(ctx context.Context, after uint64, f func(seq uint64, id string, e events.Event)) error {
	if h.bus != nil && h.bus.Down() != nil {
		return nil
	}
	s, err := h.js.Stream(ctx, HistoryStream)
	if err != nil {
		return fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	// The caller folds all of it: the watermark may move up to its end.
	h.mu.Lock()
	h.stored = max(h.stored, info.State.LastSeq)
	h.mu.Unlock()
	if info.State.Msgs == 0 || info.State.LastSeq <= after {
		return nil
	}
	prefix := historyRoot + "." + events.SanitizeToken(h.host) + "."
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + "*"}}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	err = fetchAll(c, func(m jetstream.Msg, seq uint64) error {
		e, err := events.Unmarshal(m.Data())
		if err != nil {
			h.log.Warn("skipping undecodable history entry", "subject", m.Subject(), "seq", seq, "err", err)
			return nil
		}
		f(seq, strings.TrimPrefix(m.Subject(), prefix), e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", HistoryStream, err)
	}
	return nil
}

// Restore tells the writer a container's state at start: folded up to
// history sequence seq, and to be stored if dirty (folded from history
// events newer than its stored state).
func (h *History) Restore(id string, seq uint64, v any, dirty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.last[id]; seq > p.seq {
		h.last[id] = histPos{seq: seq}
	}
	if dirty {
		h.dirty[id] = stateItem{v: v}
		h.wakeStates()
	}
}

// Save queues the container's state, to be stored once the history events
// it folds are. It never blocks; a newer state replaces one not yet stored.
func (h *History) Save(id string, v any) {
	h.mu.Lock()
	h.dirty[id] = stateItem{v: v}
	h.mu.Unlock()
	h.wakeStates()
}

// Forget removes a destroyed container's state, and the writer's memory of
// it.
func (h *History) Forget(id string) {
	h.mu.Lock()
	h.dirty[id] = stateItem{forget: true}
	h.mu.Unlock()
	h.wakeStates()
}

func (h *History) wakeStates() {
	select {
	case h.stateWake <- struct{}{}:
	default:
	}
}

// runStates stores queued states until ctx ends, then flushes.
func (h *History) runStates(ctx context.Context, histDone <-chan struct{}, flushTimeout time.Duration) {
	for {
		select {
		case <-ctx.Done():
			// The last states wait for the last history.
			<-histDone
			fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			defer cancel()
			_ = retry(fctx, backoff.NewConstantBackOff(50*time.Millisecond), func() error { return h.flushStates(fctx) })
			return
		case <-h.stateWake:
			_ = retry(ctx, storeBackoff(), func() error { return h.flushStates(ctx) })
		}
	}
}

type readyState struct {
	id  string
	seq uint64
	it  stateItem
}

// flushStates stores every queued state whose history events are stored,
// then, if none is left waiting, the watermark.
func (h *History) flushStates(ctx context.Context) error {
	for {
		histPending := h.q.Pending()
		h.mu.Lock()
		mark := h.stored
		var ready []readyState
		for id, it := range h.dirty {
			// Pending is 0 once every queued event is stored or dropped:
			// a dropped event's state must not wait for it for ever.
			if h.queued[id] > 0 && histPending > 0 {
				continue
			}
			ready = append(ready, readyState{id: id, seq: h.last[id].seq, it: it})
			delete(h.dirty, id)
			if it.forget {
				delete(h.last, id)
				delete(h.queued, id)
			}
		}
		waiting := len(h.dirty)
		// Maps keep their buckets when emptied: after a burst over every
		// container, let go of them.
		if waiting == 0 {
			h.dirty = map[string]stateItem{}
		}
		if len(h.queued) == 0 {
			h.queued = map[string]int{}
		}
		h.mu.Unlock()
		if len(ready) == 0 {
			if waiting == 0 && mark > h.folded {
				if err := h.putFolded(ctx, mark); err != nil {
					return h.stateFailed(err)
				}
				h.folded = mark
			}
			return h.stateFailed(nil)
		}
		if failed, err := h.writeStates(ctx, ready); err != nil {
			h.mu.Lock()
			for _, r := range failed {
				// A newer state queued meanwhile replaces it.
				if _, newer := h.dirty[r.id]; !newer {
					h.dirty[r.id] = r.it
					if r.it.forget {
						h.last[r.id] = histPos{seq: r.seq}
					}
				}
			}
			h.mu.Unlock()
			return h.stateFailed(err)
		}
	}
}

func (h *History) stateFailed(err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.stateErr != "" {
			h.log.Info("storing container states works again")
			h.stateErr = ""
		}
		return nil
	}
	if msg := err.Error(); msg != h.stateErr {
		h.log.Error("storing container states failed; keeping them queued and retrying", "err", err)
		h.stateErr = msg
	}
	return err
}

// writeStates stores states with pipelined acks and returns those not
// stored. A forgotten container's key is purged with its history of
// values, leaving no marker behind.
func (h *History) writeStates(ctx context.Context, ready []readyState) ([]readyState, error) {
	futures := make([]jetstream.PubAckFuture, len(ready))
	var firstErr error
	var failed []readyState
	for i, r := range ready {
		subj := stateSubject + h.stateKey(r.id)
		if r.it.forget {
			if err := h.purgeState(ctx, subj); err != nil {
				failed = append(failed, r)
				firstErr = cmp(firstErr, err)
			}
			continue
		}
		b, err := json.Marshal(storedValue{Seq: r.seq, State: r.it.v})
		if err != nil {
			h.log.Error("dropping a container state that cannot be encoded", "container_id", r.id, "err", err)
			continue
		}
		f, err := h.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: b})
		if err != nil {
			failed = append(failed, r)
			firstErr = cmp(firstErr, fmt.Errorf("state of %s: %w", r.id, err))
			continue
		}
		futures[i] = f
	}
	// States are keyed, not in order: each failure is noted and the wait
	// goes on past it.
	for from := 0; from < len(futures); {
		what := func(i int) string { return "state of " + ready[from+i].id }
		i, err := awaitAcks(ctx, futures[from:], what, nil)
		if err == nil {
			break
		}
		failed = append(failed, ready[from+i])
		firstErr = cmp(firstErr, err)
		from += i + 1
	}
	return failed, firstErr
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (h *History) purgeState(ctx context.Context, subj string) error {
	s, err := h.js.Stream(ctx, stateStream)
	if err != nil {
		return fmt.Errorf("purge %s: %w", subj, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("purge %s: %w", subj, err)
	}
	return nil
}

func (h *History) putFolded(ctx context.Context, seq uint64) error {
	b, err := json.Marshal(storedValue{Seq: seq, State: struct{}{}})
	if err != nil {
		return err
	}
	if _, err := h.js.Publish(ctx, stateSubject+h.stateKey(foldedKey), b); err != nil {
		return fmt.Errorf("store the states' watermark: %w", err)
	}
	return nil
}

// StatesHealthy reports the last state store error.
func (h *History) StatesHealthy() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stateErr != "" {
		return errors.New(h.stateErr)
	}
	return nil
}
