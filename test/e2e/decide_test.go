package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

func sick(t *testing.T, name string) {
	t.Helper()
	if out, err := dockertest.Docker("exec", name, "/fixture", "ctl", "sick"); err != nil {
		t.Fatalf("make %s sick: %v %s", name, err, out)
	}
}

// Case 1 (#14): a restart that fails because the container's bind-mount
// source is gone is retried at the policy's spacing; one whose cause is
// fixed is healed, one that stays broken is given up on.
func TestFailedRestartIsRetried(t *testing.T) {
	label := "hmd-retry-" + env.RunID
	fixed, broken := "hmd-retry-fixed-"+env.RunID, "hmd-retry-broken-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--seconds-between-restarts", "2", "--max-restarts-in-frame", "100", "--max-checks-to-give-up", "4")
	dirs := map[string]string{}
	for _, name := range []string{fixed, broken} {
		dirs[name] = t.TempDir()
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1"},
			Args: []string{"--mount", "type=bind,src=" + dirs[name] + ",dst=/data"}})
	}
	for _, name := range []string{fixed, broken} {
		dockerEvents.Wait(t, wait, name+" healthy", dockertest.Is(name, "health_status: healthy"))
		if err := os.RemoveAll(dirs[name]); err != nil {
			t.Fatal(err)
		}
		sick(t, name)
	}

	// Each failure is published, and the next try waits the policy's 2 s.
	second := h.got.waitNth(t, wait, fixed+" second failure", 2, kindOf(events.RestartFailed, fixed))
	if !strings.Contains(second.Data.Error, "no such file or directory") {
		t.Errorf("failure %q: want the daemon's reason: the mount source is gone", second.Data.Error)
	}
	if err := os.Mkdir(dirs[fixed], 0o755); err != nil {
		t.Fatal(err)
	}
	ok := h.got.wait(t, wait, fixed+" healed after the fix", kindOf(events.RestartSucceeded, fixed))
	if ok.Data.Attempt < 3 || !strings.HasPrefix(ok.Data.Reason, heal.ReasonRetry) {
		t.Errorf("healed by attempt %d (%q): want a retry, after two failures", ok.Data.Attempt, ok.Data.Reason)
	}
	dockerEvents.Wait(t, wait, fixed+" healthy after the fix", func(e dockertest.Event) bool {
		return dockertest.Is(fixed, "health_status: healthy")(e) && e.TimeNano > ok.Time.UnixNano()-int64(time.Second)
	})

	gave := h.got.wait(t, wait, broken+" given up", kindOf(events.GaveUp, broken))
	if gave.Data.Attempt != 4 {
		t.Errorf("gave up after %d attempts, want 4", gave.Data.Attempt)
	}
	reqs := h.got.log.All(kindOf(events.RestartRequested, broken))
	if n := h.got.count(kindOf(events.RestartFailed, broken)); n != 4 || len(reqs) != 4 {
		t.Fatalf("%d restarts and %d failures of %s before giving up, want 4 and 4", len(reqs), n, broken)
	}
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < 2*time.Second || gap > 5*time.Second {
			t.Errorf("try %d came %s after the one before, want seconds_between_restarts (2 s)", i+1, gap)
		}
		if reqs[i].Data.Attempt != i+1 || reqs[i].ID == reqs[i-1].ID {
			t.Errorf("try %d: attempt %d, id %s", i+1, reqs[i].Data.Attempt, reqs[i].ID)
		}
	}
	if st := dockertest.Inspect(t, broken); st.Running {
		t.Errorf("%s running, yet its restarts all failed", broken)
	}
}

// Case 2 (#14): a container's own stop timeout (30 s) is honoured: a
// process that takes 12 s to stop after SIGTERM is not killed at 10 s. A
// label's sub-second stop timeout is rounded up, not down to SIGKILL.
func TestOwnStopTimeoutIsHonoured(t *testing.T) {
	label := "hmd-stoptime-" + env.RunID
	slow, quick := "hmd-stoptime-slow-"+env.RunID, "hmd-stoptime-label-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), "--container-label", label)
	env.Run(t, dockertest.Spec{Name: slow, Labels: map[string]string{label: "true"}, Args: []string{"--stop-timeout", "30"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_TERM_DELAY": "12s"}})
	env.Run(t, dockertest.Spec{Name: quick, Labels: map[string]string{label: "true", label + ".stop_timeout": "0.4"},
		// 200 ms: well inside the second that 0.4 rounds up to, even on a
		// loaded machine; rounded down to 0 it would be SIGKILLed at once.
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_TERM_DELAY": "200ms"}})
	for _, name := range []string{slow, quick} {
		dockerEvents.Wait(t, wait, name+" healthy", dockertest.Is(name, "health_status: healthy"))
		sick(t, name)
	}
	for _, name := range []string{slow, quick} {
		h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
		die := dockerEvents.Wait(t, wait, name+" die", dockertest.Is(name, "die"))
		if code := die.Actor.Attributes["exitCode"]; code != "0" {
			t.Errorf("%s exited with %s: want 0, having stopped by itself after SIGTERM", name, code)
		}
		for _, k := range kills(dockerEvents, name) {
			if sig := k.Actor.Attributes["signal"]; sig != "15" {
				t.Errorf("%s got signal %s: want SIGTERM only", name, sig)
			}
		}
	}
	if e := dockerEvents.Wait(t, wait, slow+" die", dockertest.Is(slow, "die")); e.TimeNano-kills(dockerEvents, slow)[0].TimeNano < int64(11*time.Second) {
		t.Errorf("%s died %s after SIGTERM, want its own 12 s", slow, time.Duration(e.TimeNano-kills(dockerEvents, slow)[0].TimeNano))
	}
}

// Case 3a (#14): a sidecar on its parent's network that the user stopped is
// not started when the parent is healed.
func TestStoppedSidecarStaysStopped(t *testing.T) {
	label := "hmd-sidecar-" + env.RunID
	parent, child := "hmd-sidecar-parent-"+env.RunID, "hmd-sidecar-child-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1"}})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))
	if _, err := dockertest.Docker("stop", "-t", "2", child); err != nil {
		t.Fatal(err)
	}
	h.got.wait(t, wait, child+" stop respected", skipped(child, heal.ReasonUserStopped))

	sick(t, parent)
	h.got.wait(t, wait, parent+" healed", kindOf(events.RestartSucceeded, parent))
	// The dependent's own decision, after its die's.
	h.got.waitNth(t, wait, child+" left stopped", 2, skipped(child, heal.ReasonUserStopped))
	if st := dockertest.Inspect(t, child); st.Running {
		t.Errorf("%s is running again after docker stop", child)
	}
	if n := h.got.count(kindOf(events.RestartRequested, child)); n > 0 {
		t.Errorf("%d restarts of %s, which the user stopped", n, child)
	}
}

// Case 3b (#14): a docker stop while the container's restart waits for a
// slot ends the healer's claim: the queued restart is dropped.
func TestStopWhileQueuedIsNeverUndone(t *testing.T) {
	label := "hmd-queued-" + env.RunID
	slow, queued := "hmd-queued-slow-"+env.RunID, "hmd-queued-b-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label, "--max-concurrent-restarts", "1"}, fast...)...)
	// Its restart holds the only slot for 8 s.
	env.Run(t, dockertest.Spec{Name: slow, Labels: map[string]string{label: "true"}, Args: []string{"--stop-timeout", "30"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_TERM_DELAY": "8s"}})
	env.Run(t, dockertest.Spec{Name: queued, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1"}})
	for _, name := range []string{slow, queued} {
		dockerEvents.Wait(t, wait, name+" healthy", dockertest.Is(name, "health_status: healthy"))
	}
	sick(t, slow)
	dockerEvents.Wait(t, wait, slow+" SIGTERM", dockertest.Is(slow, "kill"))
	sick(t, queued)
	h.got.wait(t, wait, queued+" restart decided", kindOf(events.RestartRequested, queued))
	if _, err := dockertest.Docker("stop", "-t", "2", queued); err != nil {
		t.Fatal(err)
	}
	h.got.wait(t, wait, slow+" healed", kindOf(events.RestartSucceeded, slow))
	h.got.wait(t, wait, queued+" queued restart dropped", skipped(queued, heal.ReasonDropped+": "+heal.ReasonUserStopped))
	if n := h.got.count(kindOf(events.RestartSucceeded, queued)); n > 0 {
		t.Errorf("%s restarted after the user stopped it", queued)
	}
	if got := dockerEvents.All(dockertest.Is(queued, "start")); len(got) != 1 {
		t.Errorf("%s started %d times, want once (docker run)", queued, len(got))
	}
	if st := dockertest.Inspect(t, queued); st.Running {
		t.Errorf("%s is running again after docker stop", queued)
	}
}

// Case 4 (#14): under container_label=all (confined by a namespace), Swarm
// tasks are never acted on and told once, one-offs are not started again,
// and a batch job that exits non-zero is not started again unless it has
// the selection label.
func TestOwnersContainersAreLeftAlone(t *testing.T) {
	ns := "hmd-owned-" + env.RunID + "-"
	swarm, oneoff, job, crash := ns+"swarm", ns+"oneoff", ns+"job", ns+"crash"
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", "all", "--namespace", ns}, fast...)...)
	probe := []string{"--health-retries", "3"}
	exit3 := map[string]string{"FIXTURE_EXIT_AFTER": "800ms", "FIXTURE_EXIT_CODE": "3", "FIXTURE_SICK_RUNS": "1"}
	env.Run(t, dockertest.Spec{Name: swarm, Labels: map[string]string{"com.docker.swarm.task.id": "t1"}, Env: map[string]string{"FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	env.Run(t, dockertest.Spec{Name: oneoff, Labels: map[string]string{"healme": "true", "com.docker.compose.oneoff": "True"}, Args: probe, Env: exit3})
	env.Run(t, dockertest.Spec{Name: job, Args: probe, Env: exit3})
	env.Run(t, dockertest.Spec{Name: crash, Labels: map[string]string{"healme": "true"}, Args: probe, Env: exit3})

	h.got.wait(t, wait, swarm+" left to Swarm", skipped(swarm, heal.ReasonSwarm))
	h.got.wait(t, wait, oneoff+" left alone", skipped(oneoff, heal.ReasonOneOff))
	// The positive control: the same exit under the selection label heals.
	h.got.wait(t, wait, crash+" started again", kindOf(events.RestartSucceeded, crash))
	dockerEvents.Wait(t, wait, job+" die", dockertest.Is(job, "die"))
	// The swarm task turns unhealthy again on every probe; wait for more
	// of its observations, then count.
	h.got.waitNth(t, wait, swarm+" observed", 1, kindOf(events.DockerUnhealthy, swarm))
	h.got.wait(t, wait, job+" die observed", kindOf(events.DockerDie, job))
	for _, name := range []string{swarm, oneoff, job} {
		if n := h.got.count(kindOf(events.RestartRequested, name)); n > 0 {
			t.Errorf("%d restarts of %s", n, name)
		}
		if got := dockerEvents.All(dockertest.Is(name, "start")); len(got) != 1 {
			t.Errorf("%s started %d times, want once (docker run)", name, len(got))
		}
	}
	if n := h.got.count(skipped(swarm, heal.ReasonSwarm)); n != 1 {
		t.Errorf("%d skips of the Swarm task, want it told once", n)
	}
}

// A paused container stays alone, even unhealthy when its grace ends.
func TestPausedContainerStaysAlone(t *testing.T) {
	label := "hmd-paused-" + env.RunID
	name := "hmd-paused-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".start_grace": "3"}, Env: map[string]string{"FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	h.got.wait(t, wait, name+" held back", skipped(name, heal.ReasonStartGrace))
	if _, err := dockertest.Docker("pause", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("unpause", name) })
	h.got.wait(t, wait, name+" left paused", skipped(name, heal.ReasonPaused))
	if n := len(kills(dockerEvents, name)); n > 0 {
		t.Errorf("%d kills of a paused container", n)
	}
	if st := dockertest.Inspect(t, name); st.Status != "paused" {
		t.Errorf("%s is %s, want paused", name, st.Status)
	}
}
