//go:build faults

package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// startHealerVia starts an in-process healer whose Docker is host.
func startHealerVia(t *testing.T, host string, args ...string) *healer {
	t.Helper()
	orig, had := os.LookupEnv("DOCKER_HOST")
	t.Setenv("DOCKER_HOST", host)
	h := startHealer(t, t.TempDir(), args...)
	if had {
		os.Setenv("DOCKER_HOST", orig)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	return h
}

// A healer started while Docker is unreachable (its socket is not there
// for the first 10 s) is not ready, keeps trying, and heals a container
// that turned unhealthy meanwhile once the socket comes up.
func TestFaultHealerStartsWithDockerUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "hmdr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	label := "hmd-late-" + env.RunID
	name := "hmd-late-" + env.RunID
	began := time.Now()
	h := startHealerVia(t, "unix://"+dir+"/relay.sock", "--container-label", label, "--host-name", "late-"+env.RunID)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms"}})
	if err := h.Ready(); err == nil {
		t.Error("ready while Docker is unreachable")
	}
	time.Sleep(10*time.Second - time.Since(began)) // the outage itself: the fault being tested
	if err := h.Ready(); err == nil {
		t.Error("ready while Docker is unreachable")
	}
	relay, err := dockertest.StartRelay(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	up := time.Now()
	ok := h.got.wait(t, wait, name+" healed once Docker is reachable", kindOf(events.RestartSucceeded, name))
	t.Logf("Docker reachable after %s; %s healed %s later", up.Sub(began).Round(time.Millisecond), name, ok.Time.Sub(up).Round(time.Millisecond))
	deadline := time.Now().Add(wait)
	for h.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after Docker came up: %v", h.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A container crashes while the healer's connection to Docker is cut (the
// daemon runs on): at the reconnect the daemon sends its die again, as a
// replay the healer must not act on, and the listing of exited containers
// finds it; it is started again.
func TestFaultCrashWhileDisconnectedIsStarted(t *testing.T) {
	dir, err := os.MkdirTemp("", "hmdc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	relay, err := dockertest.StartRelay(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	label := "hmd-gone-" + env.RunID
	name := "hmd-gone-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealerVia(t, relay.Host(), "--container-label", label, "--host-name", "gone-"+env.RunID, "--docker-ping-interval", "500ms")
	h.got.wait(t, wait, "docker connected", func(e events.Event) bool { return e.Kind() == events.DockerConnected })
	// Three probe failures to turn unhealthy: the exit is seen as a crash.
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Args: []string{"--health-retries", "3"},
		Env: map[string]string{"FIXTURE_EXIT_AFTER": "4s", "FIXTURE_EXIT_CODE": "3"}})
	h.got.wait(t, wait, name+" started, seen by the healer", kindOf(events.DockerStart, name))
	relay.Set(false)
	h.got.wait(t, wait, "docker lost", func(e events.Event) bool { return e.Kind() == events.DockerLost })
	die := dockerEvents.Wait(t, wait, name+" crashed while disconnected", dockertest.Is(name, "die"))
	if n := h.got.count(kindOf(events.DockerDie, name)); n != 0 {
		t.Fatalf("the healer saw the die through a cut connection (%d)", n)
	}
	relay.Set(true)
	back := time.Now()
	dockerEvents.Wait(t, wait, name+" started again after the reconnect", func(e dockertest.Event) bool {
		return dockertest.Is(name, "start")(e) && e.TimeNano > die.TimeNano
	})
	ok := h.got.wait(t, wait, name+" restart succeeded", kindOf(events.RestartSucceeded, name))
	t.Logf("%s started again %s after the connection came back", name, ok.Time.Sub(back).Round(time.Millisecond))
	found := false
	for _, e := range h.got.log.All(kindOf(events.DockerDie, name)) {
		found = found || e.Data.Reconciled
	}
	if !found {
		t.Error("the die was not found by listing (reconciled)")
	}
}
