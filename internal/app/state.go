package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
)

// restoreStates is each container's state at start: its stored state, with
// the history events stored after it folded in (a healer killed between
// writing an event and its state, or a data dir of a version that stored
// no states, whose whole history is folded once). States folded from
// history are stored again.
func restoreStates(ctx context.Context, hist *bus.History, log *slog.Logger) (map[string]heal.State, int, error) {
	stored, folded, found, err := hist.LoadStates(ctx)
	if err != nil {
		return nil, 0, err
	}
	states := make(map[string]heal.State, len(stored))
	seqs := make(map[string]uint64, len(stored))
	for id, st := range stored {
		var s heal.State
		if err := json.Unmarshal(st.State, &s); err != nil {
			log.Warn("skipping a stored state that does not decode; the container starts afresh", "container_id", id, "err", err)
			continue
		}
		states[id], seqs[id] = s, st.Seq
	}
	if !found {
		// No watermark: the whole history, once.
		folded = 0
	}
	dirty := map[string]bool{}
	lastAt := map[string]time.Time{}
	n := 0
	err = hist.ReadHistory(ctx, folded, func(seq uint64, id string, e events.Event) {
		n++
		if seq <= seqs[id] {
			return
		}
		states[id], seqs[id], dirty[id], lastAt[id] = heal.Fold(states[id], e), seq, true, e.Time
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fold the history after the stored states: %w", err)
	}
	for id, s := range states {
		// Nothing of the previous healer is in flight: a claim it never
		// finished ends with its last event (a stored state's is at least
		// its last restart decision).
		last := lastAt[id]
		if s.LastRestart.After(last) {
			last = s.LastRestart
		}
		s = s.Settled(last)
		states[id] = s
		hist.Restore(id, seqs[id], s, dirty[id])
	}
	return states, n, nil
}

// crashAfterHistoryEnv names a test-only fault point: the healer kills
// itself (SIGKILL) right after storing the history event of this kind,
// before the container's state folding it is stored.
const crashAfterHistoryEnv = "HMD_TEST_CRASH_AFTER_HISTORY"

// crashAfterHistory is the fault point's hook, nil unless the variable is
// set; the variable holds an event kind and, after a colon, how many of
// them to store first (kind:n, default 1).
func crashAfterHistory(log *slog.Logger) func(events.Event) {
	v := os.Getenv(crashAfterHistoryEnv)
	if v == "" {
		return nil
	}
	kind, nth := v, 1
	if k, n, ok := cut(v); ok {
		kind, nth = k, n
	}
	log.Warn("test fault point armed: the healer kills itself after storing a history event", "kind", kind, "nth", nth)
	seen := 0
	return func(e events.Event) {
		if string(e.Kind()) != kind {
			return
		}
		if seen++; seen == nth {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

func cut(v string) (string, int, bool) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(v[i+1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return v[:i], n, true
}

// stateStore adapts the history's state writer to the healer.
type stateStore struct{ h *bus.History }

func (s stateStore) Save(id string, st heal.State) { s.h.Save(id, st) }
func (s stateStore) Forget(id string)              { s.h.Forget(id) }
