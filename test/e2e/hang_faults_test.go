//go:build faults

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mevents "github.com/moby/moby/api/types/events"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// fakeHealer is a healer process against a fake Engine API of its own:
// the fake holds only this test's containers.
type fakeHealer struct {
	fake   *fakedocker.Server
	cmd    *exec.Cmd
	stderr *waitlog.Buffer
	port   int
	data   string
}

func startFakeHealer(t *testing.T, args ...string) *fakeHealer {
	t.Helper()
	dir, err := os.MkdirTemp("", "hmdf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fake, err := fakedocker.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	h := &fakeHealer{fake: fake, port: testkit.FreePort(t), data: filepath.Join(dir, "data")}
	h.cmd = exec.Command(healerBin, append([]string{"--data-dir", h.data, "--http-port", strconv.Itoa(h.port), "--host-name", "fakehost",
		"--docker-timeout", "1s", "--docker-ping-interval", "500ms"}, args...)...)
	h.cmd.Env = append(os.Environ(), "DOCKER_HOST="+fake.Host())
	h.stderr = waitlog.Start(t, "healer", h.cmd)
	return h
}

// waitReady waits until /readyz answers code.
func (h *fakeHealer) waitReady(t *testing.T, code int, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for readyz(h.port) != code {
		if time.Since(start) > wait {
			t.Fatalf("readyz never answered %d %s\n%s", code, what, h.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func (h *fakeHealer) sick(t *testing.T, id string) {
	h.fake.Add(fakedocker.Container{ID: id, Name: "web-" + id[:4], Running: true, Health: "healthy", Labels: map[string]string{"healme": "true"}})
	h.fake.Emit(id, mevents.ActionHealthStatusUnhealthy, nil)
}

func (h *fakeHealer) waitRestart(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(strings.Join(h.fake.Calls(), ","), "restart "+id) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not restarted (calls %v)\n%s", id, h.fake.Calls(), h.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The fake Engine API hangs one endpoint at a time under a running healer
// process: /readyz turns 503 within about the call deadline (1 s here),
// the healer keeps trying, and once the endpoint answers again it is ready
// and heals. Nothing waits for ever, and the healer still stops at once.
func TestFaultHungDockerCalls(t *testing.T) {
	t.Parallel()
	for i, ep := range []string{fakedocker.EndpointList, fakedocker.EndpointInspect, fakedocker.EndpointEvents, fakedocker.EndpointPing} {
		t.Run(ep, func(t *testing.T) {
			t.Parallel()
			h := startFakeHealer(t)
			h.waitReady(t, http.StatusOK, "at start")
			if ep == fakedocker.EndpointInspect {
				// The reconcile after the reconnect inspects what is
				// unhealthy now.
				h.fake.Add(fakedocker.Container{ID: "stuck000000000", Name: "stuck", Running: true, Health: "unhealthy", Labels: map[string]string{"other": "x"}})
			}
			h.fake.Hang(ep)
			if ep != fakedocker.EndpointPing {
				// The stream breaks: the reconnect makes the hung call.
				h.fake.CutStreams()
			}
			lost := h.waitReady(t, http.StatusServiceUnavailable, "while "+ep+" hangs")
			// It keeps trying: more calls reach the hung endpoint.
			hits := h.fake.Hits(ep)
			deadline := time.Now().Add(wait)
			for h.fake.Hits(ep) < hits+2 {
				if time.Now().After(deadline) {
					t.Fatalf("the healer stopped trying %s while it hangs", ep)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if code := readyz(h.port); code != http.StatusServiceUnavailable {
				t.Errorf("readyz %d while %s hangs, want 503", code, ep)
			}
			h.fake.Release(ep)
			back := h.waitReady(t, http.StatusOK, "after "+ep+" answers again")
			id := fmt.Sprintf("sick%02d00000000", i)
			h.sick(t, id)
			h.waitRestart(t, id)
			if !strings.Contains(h.stderr.String(), "docker connection lost; reconnecting") {
				t.Errorf("no log line for the lost connection")
			}
			t.Logf("%s hung: readyz 503 after %s; ready again %s after the release; then healed", ep, lost.Round(time.Millisecond), back.Round(time.Millisecond))
		})
	}
}

// A restart hangs in the daemon when the healer is told to stop: it stops
// within shutdown_timeout all the same, and what it had queued (the
// restart's request, its own stop) is stored.
func TestFaultShutdownBoundWithARestartInFlight(t *testing.T) {
	t.Parallel()
	h := startFakeHealer(t, "--shutdown-timeout", "3s")
	h.waitReady(t, http.StatusOK, "at start")
	h.fake.Hang(fakedocker.EndpointRestart)
	h.sick(t, "hung0000000000")
	deadline := time.Now().Add(wait)
	for h.fake.Hits(fakedocker.EndpointRestart) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no restart reached the fake\n%s", h.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	asked := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- h.cmd.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(asked)
		if err != nil {
			t.Errorf("healer exit: %v", err)
		}
		if took > 4*time.Second {
			t.Errorf("stopped %s after SIGTERM; the bound is 3 s", took)
		}
		t.Logf("stopped %s after SIGTERM with a restart hung in the daemon (bound 3 s)", took.Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatalf("the healer did not stop within 15 s of SIGTERM with a restart hung\n%s", h.stderr.String())
	}
	if !strings.Contains(h.stderr.String(), "shutdown bound") {
		t.Errorf("no log line says the stop did not wait for the hung restart:\n%s", h.stderr.String())
	}
	h.fake.Release(fakedocker.EndpointRestart)
	var requested, stopped bool
	for _, e := range history(t, h.data) {
		requested = requested || e.Kind() == events.RestartRequested && e.Data.ContainerID == "hung0000000000"
		stopped = stopped || e.Kind() == events.HealerStopped
	}
	if !requested || !stopped {
		t.Errorf("stored: restart requested %v, healer stopped %v; want both (lost nothing queued)", requested, stopped)
	}
}
