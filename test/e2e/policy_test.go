package e2e

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// fast is the policy scaled down to seconds.
var fast = []string{"--seconds-between-restarts", "1", "--frame-size", "60", "--max-restarts-in-frame", "3", "--seconds-between-next-frame", "8"}

// crashLooping turns unhealthy a second after every start.
var crashLooping = map[string]string{"FIXTURE_UNHEALTHY_AFTER": "1s"}

func kills(ev *dockertest.Events, name string) []dockertest.Event {
	return ev.All(dockertest.Is(name, "kill"))
}

// (a) A container that keeps turning unhealthy is restarted exactly
// max_restarts_in_frame times, then left alone until the next frame.
func TestFrameLimitsACrashLoop(t *testing.T) {
	label := "hmd-frame-" + env.RunID
	name := "hmd-frame-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})

	limit := h.got.wait(t, wait, "frame limit", skipped(name, heal.ReasonFrameLimit))
	if n := len(kills(dockerEvents, name)); n != 3 {
		t.Fatalf("%d restarts before the frame limit, want 3", n)
	}
	third := h.got.wait(t, wait, "third restart", func(e events.Event) bool {
		return e.Kind() == events.RestartRequested && e.Subject == name && e.Data.FrameRestarts == 3
	})
	if limit.Data.RetryAt == nil || limit.Data.RetryAt.Sub(third.Time) != 8*time.Second {
		t.Errorf("frame limit retries at %v, want 8 s after the third restart (%s)", limit.Data.RetryAt, third.Time)
	}
	// The next frame: a fourth restart, no earlier than the wait allows.
	fourth := h.got.wait(t, wait, "restart in the next frame", func(e events.Event) bool {
		return e.Kind() == events.RestartRequested && e.Subject == name && e.Data.Attempt == 4
	})
	if fourth.Data.FrameRestarts != 1 || fourth.Time.Before(third.Time.Add(8*time.Second)) {
		t.Errorf("fourth restart at %s (frame restart %d): want ≥ 8 s after the third (%s), opening a new frame", fourth.Time, fourth.Data.FrameRestarts, third.Time)
	}
}

// (b) The healer is kill -9'd in the middle of a frame and started again
// on the same data dir: the container gets no extra restart.
func TestHealerCrashKeepsTheBudget(t *testing.T) {
	label := "hmd-crash-" + env.RunID
	name := "hmd-crash-" + env.RunID
	data := t.TempDir()
	dockerEvents := env.WatchEvents(t)
	policy := []string{"--container-label", label, "--seconds-between-restarts", "1", "--frame-size", "300", "--max-restarts-in-frame", "3", "--seconds-between-next-frame", "300"}
	first := exec.Command(healerBin, append([]string{"--data-dir", data, "--http-port", "0"}, policy...)...)
	first.Stderr = os.Stderr
	first.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})

	// Its first start, then one per restart.
	second := dockerEvents.WaitNth(t, wait, "start after the second restart", 3, dockertest.Is(name, "start"))
	if err := first.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	t.Logf("healer killed after restart 2 (start at %d)", second.TimeNano)

	h := startHealer(t, data, policy...)
	h.got.wait(t, wait, "frame limit after the crash", skipped(name, heal.ReasonFrameLimit))
	if n := len(kills(dockerEvents, name)); n != 3 {
		t.Errorf("%d restarts in the frame across the crash, want 3", n)
	}
	req := h.got.wait(t, wait, "restart by the second healer", kindOf(events.RestartRequested, name))
	if req.Data.FrameRestarts != 3 || req.Data.Attempt != 3 {
		t.Errorf("the second healer's restart is frame restart %d, attempt %d; want 3 and 3", req.Data.FrameRestarts, req.Data.Attempt)
	}
}

// (c) A container that exits with code 3 is started again; one that exits
// with 0 is not.
func TestCrashedContainerIsStartedAgain(t *testing.T) {
	label := "hmd-exit-" + env.RunID
	crash, done := "hmd-exit3-"+env.RunID, "hmd-exit0-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	// The fixture probes every 100 ms and turns unhealthy on one failure, so a
	// probe cut off by the exit would be reported as unhealthy before the
	// die, and healed as such. Three failures, Docker's default, need the
	// process running to fail.
	probe := []string{"--health-retries", "3"}
	env.Run(t, dockertest.Spec{Name: crash, Labels: map[string]string{label: "true"}, Args: probe, Env: map[string]string{"FIXTURE_EXIT_AFTER": "500ms", "FIXTURE_EXIT_CODE": "3", "FIXTURE_SICK_RUNS": "1"}})
	env.Run(t, dockertest.Spec{Name: done, Labels: map[string]string{label: "true"}, Args: probe, Env: map[string]string{"FIXTURE_EXIT_AFTER": "500ms", "FIXTURE_EXIT_CODE": "0", "FIXTURE_SICK_RUNS": "1"}})

	die := dockerEvents.Wait(t, wait, crash+" die", dockertest.Is(crash, "die"))
	if die.Actor.Attributes["exitCode"] != "3" {
		t.Fatalf("exit code %s", die.Actor.Attributes["exitCode"])
	}
	dockerEvents.Wait(t, wait, crash+" started again", func(e dockertest.Event) bool {
		return dockertest.Is(crash, "start")(e) && e.TimeNano > die.TimeNano
	})
	h.got.wait(t, wait, crash+" restart succeeded", kindOf(events.RestartSucceeded, crash))

	h.got.wait(t, wait, done+" left alone", skipped(done, heal.ReasonExitZero))
	d := dockerEvents.Wait(t, wait, done+" die", dockertest.Is(done, "die"))
	if got := dockerEvents.All(func(e dockertest.Event) bool { return dockertest.Is(done, "start")(e) && e.TimeNano > d.TimeNano }); len(got) > 0 {
		t.Errorf("%s exited with 0 and was started again", done)
	}
}

// (d) A container the user stops, while running or while unhealthy, stays
// stopped.
func TestUserStopIsNeverUndone(t *testing.T) {
	label := "hmd-stop-" + env.RunID
	running, sick := "hmd-stop-run-"+env.RunID, "hmd-stop-sick-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: running, Labels: map[string]string{label: "true"}})
	// start_grace holds the sick one's restart back, so the stop comes first.
	env.Run(t, dockertest.Spec{Name: sick, Labels: map[string]string{label: "true", label + ".start_grace": "4"}, Env: map[string]string{"FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	dockerEvents.Wait(t, wait, running+" healthy", dockertest.Is(running, "health_status: healthy"))
	h.got.wait(t, wait, sick+" held back", skipped(sick, heal.ReasonStartGrace))

	for _, name := range []string{running, sick} {
		if _, err := dockertest.Docker("stop", "-t", "2", name); err != nil {
			t.Fatal(err)
		}
	}
	h.got.wait(t, wait, running+" stop respected", skipped(running, heal.ReasonUserStopped))
	// When start_grace ends the healer looks again, and must leave it.
	// The die of the stop, then the look when the grace ends.
	h.got.waitNth(t, wait, sick+" stop respected after the grace", 2, skipped(sick, heal.ReasonUserStopped))
	for _, name := range []string{running, sick} {
		st := dockertest.Inspect(t, name)
		if st.Running {
			t.Errorf("%s is running again after docker stop", name)
		}
		if n := h.got.count(kindOf(events.RestartRequested, name)); n > 0 {
			t.Errorf("%d restarts of %s, which the user stopped", n, name)
		}
	}
}

// (e) The gave-up event comes after max_checks_to_give_up restarts.
func TestGivesUp(t *testing.T) {
	label := "hmd-giveup-" + env.RunID
	name := "hmd-giveup-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--seconds-between-restarts", "0", "--max-restarts-in-frame", "100", "--max-checks-to-give-up", "2")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})
	gave := h.got.wait(t, wait, "gave up", kindOf(events.GaveUp, name))
	if n := len(kills(dockerEvents, name)); n != 2 {
		t.Errorf("%d restarts before giving up, want 2", n)
	}
	if gave.Data.Attempt != 2 {
		t.Errorf("gave-up event says %d attempts, want 2", gave.Data.Attempt)
	}
	if st := dockertest.Inspect(t, name); !st.Running || st.Health != "unhealthy" {
		t.Errorf("after giving up: running %v, health %s; want left running and unhealthy", st.Running, st.Health)
	}
}

// (f) A container on its parent's network (network_mode container:) gets
// its network back after the parent is healed.
func TestDependentGetsNetworkBack(t *testing.T) {
	label := "hmd-dep-" + env.RunID
	parent, child := "hmd-parent-"+env.RunID, "hmd-child-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1"}})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))
	if out, err := dockertest.Docker("exec", child, "/fixture", "probe", "127.0.0.1:8080"); err != nil {
		t.Fatalf("child cannot reach its parent before the heal: %v %s", err, out)
	}

	if _, err := dockertest.Docker("exec", parent, "/fixture", "ctl", "sick"); err != nil {
		t.Fatal(err)
	}
	pStart := dockerEvents.WaitNth(t, wait, parent+" started after its restart", 2, dockertest.Is(parent, "start"))
	dockerEvents.Wait(t, wait, child+" restarted after its parent", func(e dockertest.Event) bool {
		return dockertest.Is(child, "start")(e) && e.TimeNano > pStart.TimeNano
	})
	h.got.wait(t, wait, child+" restart succeeded", kindOf(events.RestartSucceeded, child))
	if out, err := dockertest.Docker("exec", child, "/fixture", "probe", "127.0.0.1:8080"); err != nil {
		t.Errorf("child cannot reach its parent after the heal: %v %s", err, out)
	}
}

// (g) An invalid label gives one config-error event, and the container is
// still healed with the default for that key.
func TestInvalidLabelStillHeals(t *testing.T) {
	label := "hmd-badlabel-" + env.RunID
	name := "hmd-badlabel-" + env.RunID
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".max_restarts_in_frame": "lots"}, Env: crashLooping})
	h.got.wait(t, wait, "frame limit at the default of 3", skipped(name, heal.ReasonFrameLimit))
	bad := func(e events.Event) bool { return e.Kind() == events.ConfigError && e.Subject == name }
	if n := h.got.count(bad); n != 1 {
		t.Errorf("%d config-error events, want 1", n)
	}
	e := h.got.wait(t, wait, "config error", bad)
	if e.Data.Label != label+".max_restarts_in_frame" || e.Data.Value != "lots" || e.Data.Expected == "" {
		t.Errorf("config error %+v", e.Data)
	}
	if n := h.got.count(kindOf(events.RestartSucceeded, name)); n != 3 {
		t.Errorf("%d restarts, want 3 (the default max_restarts_in_frame)", n)
	}
}

// (h) Repairman's and autoheal's names take effect.
func TestAliases(t *testing.T) {
	ns := "hmd-alias-" + env.RunID
	name, outside := ns+"-web", "hmd-outside-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealerEnv(t, t.TempDir(), []string{
		"NAMESPACE=" + ns,
		"DEFAULT_MAX_RESTARTS_IN_FRAME=1",
		"DEFAULT_SECONDS_BETWEEN_NEXT_FRAME=300",
		"AUTOHEAL_DEFAULT_STOP_TIMEOUT=3",
	}) // the default label: other healers' labels select only under it (NAMESPACE confines it)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{"autoheal": "true", config.Repairman + "seconds_between_restarts": "0"}, Env: crashLooping})
	env.Run(t, dockertest.Spec{Name: outside, Labels: map[string]string{"autoheal": "true"}, Env: crashLooping})

	h.got.wait(t, wait, "frame limit of 1", skipped(name, heal.ReasonFrameLimit))
	if n := len(kills(dockerEvents, name)); n != 1 {
		t.Errorf("%d restarts, want 1 (DEFAULT_MAX_RESTARTS_IN_FRAME=1)", n)
	}
	dockerEvents.Wait(t, wait, outside+" unhealthy", dockertest.Is(outside, "health_status: unhealthy"))
	if n := len(kills(dockerEvents, outside)); n != 0 {
		t.Errorf("%s is outside NAMESPACE and was restarted %d times", outside, n)
	}
	req := h.got.wait(t, wait, "restart", kindOf(events.RestartRequested, name))
	if req.Data.Reason == "" {
		t.Error("restart without reason")
	}
}
