//go:build faults

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/testkit/natstest"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// smallFS mounts a tmpfs of size for the test: a data dir that fills up.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs (the fault suite runs as root): %v: %s", size, err, out)
	}
	// Registered after TempDir, so it runs before the dir is removed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
	}
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	// The last pages too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// storeHealer is a healer process with its HTTP port and a NATS listener
// the test reads the stored events through.
type storeHealer struct {
	port, natsPort int
	cmd            *exec.Cmd
	stderr         *waitlog.Buffer
}

const storePassword = "store-fault-pw"

func startStoreHealer(t *testing.T, dataDir string, args ...string) *storeHealer {
	t.Helper()
	h := &storeHealer{port: testkit.FreePort(t), natsPort: testkit.FreePort(t)}
	args = append([]string{"--data-dir", dataDir, "--http-port", strconv.Itoa(h.port),
		"--nats-listen", "127.0.0.1:" + strconv.Itoa(h.natsPort), "--nats-user", "hmd", "--nats-password", storePassword,
		"--log-level", "info"}, args...)
	h.cmd = exec.Command(healerBin, args...)
	h.cmd.Env = os.Environ()
	h.stderr = waitlog.Start(t, "healer", h.cmd)
	return h
}

// stop interrupts the healer and waits for it to exit.
func (h *storeHealer) stop(t *testing.T) {
	t.Helper()
	_ = h.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _, _ = h.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("healer did not stop within 30 s")
	}
}

// readyz polls /readyz until it answers want, and returns its body.
func (h *storeHealer) readyz(t *testing.T, want int, d time.Duration) string {
	t.Helper()
	type answer struct {
		code int
		body string
	}
	last := testkit.Eventually(t, d, fmt.Sprintf("readyz to answer %d", want), func() (answer, bool) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", h.port))
		if err != nil {
			return answer{body: err.Error()}, false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return answer{resp.StatusCode, string(b)}, resp.StatusCode == want
	})
	return last.body
}

// metric reads one sample from /metrics.
func (h *storeHealer) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", h.port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

// stored reads the events stream through the healer's listener.
func (h *storeHealer) stored(t *testing.T) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := natstest.ReadStreamAt(ctx, fmt.Sprintf("nats://127.0.0.1:%d", h.natsPort), bus.EventsStream, nats.UserInfo("hmd", storePassword))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitStored waits until the stored events satisfy ok.
func (h *storeHealer) waitStored(t *testing.T, what string, ok func([]events.Event) bool) []events.Event {
	t.Helper()
	type seen []events.Event
	return testkit.Eventually(t, wait, "stored events to have "+what, func() (seen, bool) {
		evs := h.stored(t)
		return evs, ok(evs)
	})
}

func count(evs []events.Event, match func(events.Event) bool) int {
	n := 0
	for _, e := range evs {
		if match(e) {
			n++
		}
	}
	return n
}

func index(evs []events.Event, k events.Kind) int {
	for i, e := range evs {
		if e.Kind() == k {
			return i
		}
	}
	return -1
}

// noneDropped checks the drop counters: what was lost is what they count.
func (h *storeHealer) noneDropped(t *testing.T) {
	t.Helper()
	ev := h.metric(t, `hmd_events_dropped_total{store="events"}`)
	hi := h.metric(t, `hmd_events_dropped_total{store="history"}`)
	if ev != 0 || hi != 0 {
		t.Errorf("dropped %v events and %v history entries; the queue bound is far away", ev, hi)
	}
}

// Data dir full at start: the healer heals from Docker's state alone,
// /readyz says why, and once space returns the events queued meanwhile
// (the degraded event first, the restart of a container healed while
// degraded) are stored in order. Lost: nothing.
func TestFaultStoreFullAtStart(t *testing.T) {
	data := smallFS(t, "32m")
	filler := fill(t, data)
	label := "hmd-storefull-" + env.RunID
	name := "hmd-storefull-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startStoreHealer(t, data, "--container-label", label, "--seconds-between-restarts", "1")
	body := h.readyz(t, http.StatusServiceUnavailable, wait)
	if !strings.Contains(body, "store degraded") || !strings.Contains(body, "no space left") {
		t.Errorf("readyz while the data dir is full: %q; want the store and the reason", body)
	}
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "1s"}})
	dockerEvents.Wait(t, wait, name+" healed while the store is degraded", dockertest.Is(name, "restart"))
	if body := h.readyz(t, http.StatusServiceUnavailable, time.Second); !strings.Contains(body, "store degraded") {
		t.Errorf("readyz after healing, still full: %q", body)
	}
	freed := time.Now()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	h.readyz(t, http.StatusOK, wait)
	t.Logf("store back %s after space returned", time.Since(freed).Round(time.Millisecond))
	evs := h.waitStored(t, "the restart done while degraded", func(evs []events.Event) bool {
		return count(evs, kindOf(events.RestartSucceeded, name)) == 1
	})
	deg, started := index(evs, events.Degraded), index(evs, events.HealerStarted)
	if deg < 0 || started < 0 || deg > started {
		t.Errorf("stored order: healer.degraded at %d, healer.started at %d; want the degraded event first", deg, started)
	} else if !strings.Contains(evs[deg].Data.Reason, "no space left") {
		t.Errorf("degraded reason %q", evs[deg].Data.Reason)
	}
	req, ok := index(evs, events.RestartRequested), index(evs, events.RestartSucceeded)
	if req < 0 || ok < req || !evs[req].Time.Before(freed) {
		t.Errorf("restart requested at %d, succeeded at %d; want both, in order, the request from the degraded time (space freed %s)", req, ok, freed)
	}
	h.noneDropped(t)
	t.Logf("lost: nothing; %d events stored, the restart of %s while degraded among them", len(evs), name)
}

// Data dir full during a restart storm: JetStream disables itself at the
// write error, the healer goes degraded (503) and heals on; when space
// returns the store comes back without a restart of the healer, and every
// restart Docker reports is in the stream. Lost: nothing.
func TestFaultStoreFullDuringStorm(t *testing.T) {
	data := smallFS(t, "32m")
	label := "hmd-stormfull-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startStoreHealer(t, data, "--container-label", label, "--seconds-between-restarts", "1",
		"--frame-size", "600", "--max-restarts-in-frame", "1000", "--max-checks-to-give-up", "0")
	h.readyz(t, http.StatusOK, wait)
	filler := fill(t, data)
	var names []string
	for i := range 4 {
		name := fmt.Sprintf("hmd-stormfull-%d-%s", i, env.RunID)
		names = append(names, name)
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})
	}
	body := h.readyz(t, http.StatusServiceUnavailable, wait)
	degradedAt := time.Now()
	t.Logf("degraded: %s", strings.TrimSpace(body))
	isStorm := func(e dockertest.Event) bool {
		return e.Action == "restart" && strings.HasPrefix(e.Name(), "hmd-stormfull-")
	}
	before := len(dockerEvents.All(isStorm))
	dockerEvents.WaitNth(t, wait, "a restart while degraded", before+2, isStorm)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	h.readyz(t, http.StatusOK, wait)
	t.Logf("store back %s after space returned (degraded for %s)", time.Since(freed).Round(time.Millisecond), time.Since(degradedAt).Round(time.Millisecond))
	// End the storm, then every restart Docker saw must be stored.
	for _, n := range names {
		_, _ = dockertest.Docker("rm", "-f", n)
	}
	restarts := len(dockerEvents.All(isStorm))
	isOK := func(e events.Event) bool {
		return e.Kind() == events.RestartSucceeded && strings.HasPrefix(e.Subject, "hmd-stormfull-")
	}
	evs := h.waitStored(t, fmt.Sprintf("the %d restarts Docker reported", restarts), func(evs []events.Event) bool {
		return count(evs, isOK) >= restarts
	})
	if n := count(evs, isOK); n != restarts {
		t.Errorf("stored %d restarts, Docker reported %d", n, restarts)
	}
	if count(evs, func(e events.Event) bool { return e.Kind() == events.Degraded }) == 0 {
		t.Error("no healer.degraded event stored")
	}
	during := count(evs, func(e events.Event) bool { return isOK(e) && e.Time.After(degradedAt) && e.Time.Before(freed) })
	if during == 0 {
		t.Error("no restart from the degraded time stored")
	}
	h.noneDropped(t)
	t.Logf("lost: nothing; %d restarts in the storm, %d of them while degraded, all stored", restarts, during)
}

// Data dir read-only at start: degraded with the reason, back when it is
// writable again, the degraded event stored ahead of the start.
func TestFaultStoreReadOnly(t *testing.T) {
	data := smallFS(t, "16m")
	remount(t, data, "ro")
	h := startStoreHealer(t, data, "--container-label", "hmd-storero-"+env.RunID)
	body := h.readyz(t, http.StatusServiceUnavailable, wait)
	if !strings.Contains(body, "store degraded") || !strings.Contains(body, "read-only file system") {
		t.Errorf("readyz on a read-only data dir: %q", body)
	}
	remount(t, data, "rw")
	h.readyz(t, http.StatusOK, wait)
	evs := h.waitStored(t, "the start", func(evs []events.Event) bool { return index(evs, events.HealerStarted) >= 0 })
	if deg, started := index(evs, events.Degraded), index(evs, events.HealerStarted); deg < 0 || deg > started {
		t.Errorf("stored order: degraded %d, started %d", deg, started)
	}
	h.noneDropped(t)
	t.Logf("lost: nothing; %d events stored after the dir became writable", len(evs))
}

// Corrupt stream file: the stream is moved aside (kept, named in the log)
// and a fresh one started.
func TestFaultStoreCorruptStream(t *testing.T) {
	data := t.TempDir()
	label := "hmd-storecorrupt-" + env.RunID
	h := startStoreHealer(t, data, "--container-label", label)
	h.readyz(t, http.StatusOK, wait)
	first := h.waitStored(t, "the first run's start", func(evs []events.Event) bool { return index(evs, events.HealerStarted) >= 0 })
	h.stop(t)
	meta := filepath.Join(data, "jetstream", "$G", "streams", bus.EventsStream, "meta.inf")
	if err := os.WriteFile(meta, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	h = startStoreHealer(t, data, "--container-label", label)
	h.readyz(t, http.StatusOK, wait)
	evs := h.waitStored(t, "the second run's start", func(evs []events.Event) bool { return index(evs, events.HealerStarted) >= 0 })
	if len(evs) >= len(first)+1 && evs[0].ID == first[0].ID {
		t.Errorf("the corrupt stream was kept in place")
	}
	aside, _ := filepath.Glob(filepath.Join(data, "corrupt", bus.EventsStream+"-*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt stream not moved aside: %v", aside)
	}
	if !strings.Contains(h.stderr.String(), aside[0]) {
		t.Errorf("the log does not name %s", aside[0])
	}
	blocks, _ := filepath.Glob(filepath.Join(aside[0], "msgs", "*.blk"))
	if len(blocks) == 0 {
		t.Errorf("the moved stream lost its message blocks")
	}
	h.noneDropped(t)
	t.Logf("lost from the live stream: the first run's %d events, kept in %s; nothing of the second run", len(first), aside[0])
}
