//go:build faults

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// privateDaemon is a dockerd of the test's own, which it can kill (see
// dockertest.Daemon). It runs the engine under test: the one EngineEnv
// names, or the dockerd on PATH.
type privateDaemon struct {
	*dockertest.Daemon
	t *testing.T
}

func startPrivateDaemon(t *testing.T) *privateDaemon {
	t.Helper()
	d, err := dockertest.StartDaemon(os.Getenv(dockertest.EngineEnv))
	if err != nil {
		t.Fatal(err)
	}
	p := &privateDaemon{Daemon: d, t: t}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func (d *privateDaemon) host() string { return d.Host() }

func (d *privateDaemon) start() {
	d.t.Helper()
	if err := d.Start(); err != nil {
		d.t.Fatal(err)
	}
}

func (d *privateDaemon) kill() { d.Kill() }

func (d *privateDaemon) docker(args ...string) (string, error) { return d.Docker(args...) }

func readyz(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Docker daemon restart: the daemon is killed while a labelled container
// is about to turn unhealthy, and comes back after outage. The container
// is healed within 5 s of its return; readiness is 503 while it is gone
// and 200 after; docker_lost and docker_connected are published.
func TestFaultDockerDaemonRestart(t *testing.T) {
	for _, outage := range []time.Duration{3 * time.Second, 60 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) { daemonRestart(t, outage) })
	}
}

func daemonRestart(t *testing.T, outage time.Duration) {
	d := startPrivateDaemon(t)
	if err := d.Load(env.Image); err != nil {
		t.Fatal(err)
	}
	label := "hmd-daemon-" + env.RunID
	name := "hmd-daemon-" + env.RunID
	port := testkit.FreePort(t)
	t.Setenv("DOCKER_HOST", d.host())
	h := startHealer(t, t.TempDir(), "--container-label", label, "--http-port", strconv.Itoa(port), "--docker-ping-interval", "500ms")
	os.Unsetenv("DOCKER_HOST")
	h.got.wait(t, wait, "docker connected", func(e events.Event) bool { return e.Kind() == events.DockerConnected })

	// It turns unhealthy 2 s after every start: the daemon dies before
	// the first time, and starts it again (restart policy) on its return.
	if out, err := d.docker("run", "-d", "--name", name, "--network", "none", "--label", label+"=true", "--restart", "always",
		"-e", "FIXTURE_SICK_RUNS=0", "-e", "FIXTURE_UNHEALTHY_AFTER=2s",
		"--health-interval", "100ms", "--health-retries", "1", env.Image); err != nil {
		t.Fatalf("run on the private daemon: %v\n%s", err, out)
	}
	d.kill()
	h.got.wait(t, wait, "docker lost", func(e events.Event) bool { return e.Kind() == events.DockerLost })
	if code := readyz(port); code != http.StatusServiceUnavailable {
		t.Errorf("readyz while the daemon is gone: %d, want 503", code)
	}
	time.Sleep(outage) // the outage itself: the fault being tested
	d.start()
	back := time.Now()
	h.got.wait(t, wait, "docker connected again", func(e events.Event) bool {
		return e.Kind() == events.DockerConnected && e.Time.After(back.Add(-time.Second))
	})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")
			t.Logf("private daemon's containers:\n%s", out)
			t.Logf("dockerd log (tail):\n%s", d.LogTail(30))
		}
	})
	ok := h.got.wait(t, wait, name+" healed after the daemon's return", kindOf(events.RestartSucceeded, name))
	if took := ok.Time.Sub(back); took > 5*time.Second {
		t.Errorf("healed %s after the daemon's return, want within 5 s", took)
	} else {
		t.Logf("healed %s after the daemon's return (outage %s)", took.Round(time.Millisecond), outage)
	}
	deadline := time.Now().Add(wait)
	for readyz(port) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not come back to 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = d.docker("rm", "-f", name)
}
