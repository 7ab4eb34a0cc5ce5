package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// storedBudget reads, from a stopped healer's data dir, a container's
// stored state and the restart decisions in its history.
func storedBudget(t *testing.T, dataDir, host, id string) (heal.State, bool, []events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		t.Fatalf("reopen data dir: %v", err)
	}
	defer b.Close()
	hist, err := b.OpenHistory(ctx, host, bus.HistoryOptions{PerContainer: 50}, log)
	if err != nil {
		t.Fatal(err)
	}
	states, _, _, err := hist.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var s heal.State
	st, found := states[id]
	if found {
		if err := json.Unmarshal(st.State, &s); err != nil {
			t.Fatal(err)
		}
	}
	var reqs []events.Event
	err = hist.ReadHistory(ctx, 0, func(_ uint64, cid string, e events.Event) {
		if cid == id && e.Kind() == events.RestartRequested {
			reqs = append(reqs, e)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, found, reqs
}

// The healer is killed (SIGKILL, by a test-only fault point in the
// process) right after storing its second restart decision in the history
// and before storing the container's state that counts it. Started again,
// it folds that decision from the history: the frame's third restart is
// its next, then the frame limit, as if it had never died.
func TestHealerCrashBetweenHistoryAndStateKeepsTheBudget(t *testing.T) {
	label := "hmd-crashst-" + env.RunID
	name := "hmd-crashst-" + env.RunID
	host := "crashst-" + env.RunID
	data := t.TempDir()
	dockerEvents := env.WatchEvents(t)
	policy := []string{"--container-label", label, "--host-name", host, "--seconds-between-restarts", "1", "--frame-size", "300", "--max-restarts-in-frame", "3", "--seconds-between-next-frame", "300"}
	first := exec.Command(healerBin, append([]string{"--data-dir", data, "--http-port", "0"}, policy...)...)
	first.Env = append(os.Environ(), "HMD_TEST_CRASH_AFTER_HISTORY="+string(events.RestartRequested)+":2")
	first.Stderr = os.Stderr
	first.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	t.Cleanup(func() { _ = first.Process.Kill() })
	id := env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})

	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("first healer ended with %v, want killed by SIGKILL at the fault point", err)
		}
	case <-time.After(wait):
		t.Fatalf("first healer not killed at its second restart decision within %s", wait)
	}
	// The fault point hit between the two writes: the history has both
	// decisions, the stored state only the first (or none).
	st, _, reqs := storedBudget(t, data, host, id)
	if len(reqs) != 2 {
		t.Fatalf("history holds %d restart decisions, want 2", len(reqs))
	}
	if st.FrameRestarts >= 2 {
		t.Fatalf("stored state already counts %d restarts: the fault point did not fall between history and state", st.FrameRestarts)
	}

	h := startHealer(t, data, policy...)
	req := h.got.wait(t, wait, "restart by the second healer", kindOf(events.RestartRequested, name))
	if req.Data.FrameRestarts != 3 || req.Data.Attempt != 3 {
		t.Errorf("the second healer's restart is frame restart %d, attempt %d; want 3 and 3", req.Data.FrameRestarts, req.Data.Attempt)
	}
	h.got.wait(t, wait, "frame limit after the crash", skipped(name, heal.ReasonFrameLimit))
	if n := len(kills(dockerEvents, name)); n > 3 {
		t.Errorf("%d restarts in the frame across the crash, want at most 3", n)
	}
}
