package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/fakedocker"
)

// writeHistory stores events through the bus's history writer, and with
// save their folded states, as a healer does (without, as the previous
// version, which stored none). With crashAt ≥ 0 the writer stops for good
// right after storing es[crashAt], before the state folding it, and the
// store is closed under it, as if the healer had been killed there.
func writeHistory(t *testing.T, dataDir string, es []events.Event, save bool, crashAt int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	crashed, dead := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(dead) })
	o := bus.HistoryOptions{PerContainer: 50}
	if crashAt >= 0 {
		o.AfterStore = func(e events.Event) {
			if e.ID == es[crashAt].ID {
				close(crashed)
				<-dead
			}
		}
	}
	hist, err := b.OpenHistory(ctx, "statehost", o, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = hist.Run(rctx) })
	states := map[string]heal.State{}
	for _, e := range es {
		id := e.Data.ContainerID
		states[id] = heal.Fold(states[id], e)
		hist.Publish(e)
		if save {
			hist.Save(id, states[id])
		}
	}
	if crashAt >= 0 {
		<-crashed
		_ = b.Close()
		stop() // the writer is stuck in the fault point until t ends
		return
	}
	stop()
	wg.Wait()
	if !save {
		// The previous version had no state bucket.
		if err := b.JetStream().DeleteStream(ctx, "KV_"+bus.StateBucket); err != nil {
			t.Fatal(err)
		}
	}
	_ = b.Close()
}

// budget is a container's history: two restarts in a frame, then a
// gave-up.
func budget(id string, t0 time.Time) []events.Event {
	d := events.Data{Host: "statehost", ContainerID: id, Container: "svc-" + id}
	at := func(k events.Kind, s int, f func(*events.Data)) events.Event {
		dd := d
		if f != nil {
			f(&dd)
		}
		return events.New(k, fmt.Sprintf("%s-%s-%d", id, k, s), t0.Add(time.Duration(s)*time.Second), dd.Container, dd)
	}
	fs := t0.Add(time.Second)
	return []events.Event{
		at(events.DockerStart, 0, nil),
		at(events.RestartRequested, 1, func(d *events.Data) { d.Attempt, d.FrameRestarts, d.BackoffStep, d.FrameStart = 1, 1, 1, &fs }),
		at(events.RestartSucceeded, 2, nil),
		at(events.RestartRequested, 3, func(d *events.Data) { d.Attempt, d.FrameRestarts, d.BackoffStep, d.FrameStart = 2, 2, 2, &fs }),
		at(events.RestartFailed, 4, func(d *events.Data) { d.Error = "port is taken" }),
		at(events.GaveUp, 5, func(d *events.Data) { d.Attempt = 2 }),
	}
}

func restore(t *testing.T, dataDir string) (map[string]heal.State, int, map[string]bus.StoredState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hist, err := b.OpenHistory(ctx, "statehost", bus.HistoryOptions{PerContainer: 50}, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = hist.Run(rctx) })
	states, folded, err := restoreStates(ctx, hist, log)
	if err != nil {
		t.Fatal(err)
	}
	// Run's end stores what the restore folded from history.
	stop()
	wg.Wait()
	stored, _, _, err := hist.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return states, folded, stored
}

// storedHistory is the history in a data dir, by container.
func storedHistory(t *testing.T, dataDir string) map[string][]events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hist, err := b.OpenHistory(ctx, "statehost", bus.HistoryOptions{PerContainer: 50}, log)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]events.Event{}
	if err := hist.ReadHistory(ctx, 0, func(_ uint64, id string, e events.Event) { out[id] = append(out[id], e) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func decoded(t *testing.T, st bus.StoredState) heal.State {
	t.Helper()
	var s heal.State
	if err := json.Unmarshal(st.State, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A healer killed after storing a history event but before storing the
// state that folds it loses no budget: the next start folds the history
// stored after the stored states, and stores the states again.
func TestRestoreFoldsHistoryNewerThanTheState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	a, b := budget("aaaa", t0), budget("bbbb", t0)
	// A clean run stores aaaa's history and state up to its second restart
	// decision; the next one is killed right after storing its failure.
	writeHistory(t, dir, a[:4], true, -1)
	writeHistory(t, dir, append(append([]events.Event{}, a[4:]...), b...), true, 0)
	// The batch's later events may have been stored before the kill too:
	// the budget is the whole stored history's.
	hist := storedHistory(t, dir)
	want := map[string]heal.State{}
	for id, es := range hist {
		want[id] = heal.FoldAll(es)
	}
	if w := want["aaaa"]; w.Failures != 1 || w.Attempt != 2 || w.FrameRestarts != 2 {
		t.Fatalf("stored history does not hold the failure: %+v", w)
	}

	got, folded, stored := restore(t, dir)
	if n := len(hist["aaaa"]) - 4 + len(hist["bbbb"]); folded != n {
		t.Errorf("folded %d history events after the stored states, want %d (those after the clean run)", folded, n)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s restored as\n%+v\nwant\n%+v", id, got[id], w)
		}
		if s := decoded(t, stored[id]); s != w {
			t.Errorf("%s stored again as\n%+v\nwant\n%+v", id, s, w)
		}
	}
	// Once stored again, the next start reads no history.
	again, folded, _ := restore(t, dir)
	if folded != 0 || len(again) != len(want) || again["aaaa"] != want["aaaa"] {
		t.Errorf("second start folded %d history events; states %+v", folded, again)
	}
}

// A data dir of the previous version holds history and no states: the
// healer starts from its whole history folded, and stores the states, so
// the next start reads them alone.
func TestMigrationFromHistoryOnly(t *testing.T) {
	data := t.TempDir()
	t0 := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	var es []events.Event
	ids := []string{"c00000000000", "c00000000001", "c00000000002"}
	for _, id := range ids {
		es = append(es, budget(id, t0)...)
	}
	writeHistory(t, data, es, false, -1)

	fake, err := fakedocker.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	t.Setenv("DOCKER_HOST", fake.Host())
	cfg, err := config.Load(nil, []string{"HMD_DATA_DIR=" + data, "HMD_HOST_NAME=statehost", "HMD_DOCKER_PING_INTERVAL=1h", "HMD_DOCKER_RECONCILE_INTERVAL=0"}, io.Discard, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)), "test")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for _, id := range ids {
		want := heal.FoldAll(budget(id, t0))
		if got := a.healer.State(id); got != want {
			t.Errorf("%s after migration:\n%+v\nwant\n%+v", id, got, want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	got, folded, stored := restore(t, data)
	if folded != 0 {
		t.Errorf("the start after the migration folded %d history events, want 0", folded)
	}
	for _, id := range ids {
		want := heal.FoldAll(budget(id, t0))
		if got[id] != want || decoded(t, stored[id]) != want {
			t.Errorf("%s stored by the migration:\n%+v\nwant\n%+v", id, decoded(t, stored[id]), want)
		}
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
