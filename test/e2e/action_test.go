package e2e

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// touched reports the Docker events that act on a container: what the
// healer would send (kill, stop, restart, start after the first start).
func touched(ev *dockertest.Events, name string) []dockertest.Event {
	return ev.All(func(e dockertest.Event) bool {
		return e.Name() == name && (e.Action == "kill" || e.Action == "stop" || e.Action == "restart" || e.Action == "die")
	})
}

// Item 1 (#16): <label>.action chooses what healing does, per container.
func TestActionPerContainer(t *testing.T) {
	label := "hmd-action-" + env.RunID
	stop, notify, none, bad := "hmd-act-stop-"+env.RunID, "hmd-act-notify-"+env.RunID, "hmd-act-none-"+env.RunID, "hmd-act-bad-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	// Each turns unhealthy by itself a second after its first start; three
	// failed probes, so a loaded machine's slow probe is not taken for it.
	for name, action := range map[string]string{stop: "stop", notify: "notify", none: "none", bad: "reboot"} {
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".action": action}, Args: []string{"--health-retries", "3"},
			Env: map[string]string{"FIXTURE_UNHEALTHY_AFTER": "1s", "FIXTURE_SICK_RUNS": "1"}})
	}

	// stop: stopped, told as such, and its own death is not healed.
	req := h.got.wait(t, wait, stop+" stop decided", kindOf(events.RestartRequested, stop))
	if req.Data.Action != config.ActionStop {
		t.Errorf("%s decision action %q, want stop", stop, req.Data.Action)
	}
	h.got.wait(t, wait, stop+" stopped", kindOf(events.Stopped, stop))
	stopDie := dockerEvents.Wait(t, wait, stop+" died of the stop", dockertest.Is(stop, "die"))

	// A bad value is a config.error, and the default (restart) applies.
	e := h.got.wait(t, wait, bad+" config error", kindOf(events.ConfigError, bad))
	if e.Data.Label != label+".action" {
		t.Errorf("config error names %q, want %s.action", e.Data.Label, label)
	}
	h.got.wait(t, wait, bad+" restarted by default", kindOf(events.RestartSucceeded, bad))

	// notify: decided, published and told, nothing sent to Docker.
	req = h.got.wait(t, wait, notify+" decision", kindOf(events.RestartRequested, notify))
	if req.Data.Action != config.ActionNotify || req.Data.DryRun {
		t.Errorf("%s decision action %q dry_run %v, want notify, false", notify, req.Data.Action, req.Data.DryRun)
	}
	// none: the health event is recorded, no decision is taken.
	h.got.wait(t, wait, none+" unhealthy recorded", kindOf(events.DockerUnhealthy, none))

	// By now the restart of bad and the stop are over; nothing touched the
	// notify and none containers, which are still running, and unhealthy.
	for _, name := range []string{notify, none} {
		if got := touched(dockerEvents, name); len(got) > 0 {
			t.Errorf("%s was acted on: %s", name, got[0].Action)
		}
		if st := dockertest.Inspect(t, name); !st.Running {
			t.Errorf("%s not running", name)
		}
		if n := h.got.count(kindOf(events.RestartSucceeded, name)) + h.got.count(kindOf(events.Stopped, name)); n > 0 {
			t.Errorf("%s has %d outcomes, want none", name, n)
		}
	}
	// The stop's die was not healed: still stopped, never started again.
	if st := dockertest.Inspect(t, stop); st.Running {
		t.Errorf("%s running after action=stop", stop)
	}
	if got := dockerEvents.All(func(e dockertest.Event) bool { return dockertest.Is(stop, "start")(e) && e.TimeNano > stopDie.TimeNano }); len(got) > 0 {
		t.Errorf("%s started again after action=stop", stop)
	}
	if n := h.got.count(func(e events.Event) bool { return e.Subject == none && e.Kind().Category() == "decision" }); n > 0 {
		t.Errorf("%s (action none) has %d decisions, want none", none, n)
	}
}

// Item 2 (#16): in monitor-only mode every decision is published as if the
// restart happened (dry_run), the budget counts, and no container is touched.
func TestDryRunTouchesNothing(t *testing.T) {
	label := "hmd-dry-" + env.RunID
	sickOne, crash := "hmd-dry-sick-"+env.RunID, "hmd-dry-crash-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--dry-run", "--seconds-between-restarts", "0", "--max-restarts-in-frame", "2", "--seconds-between-next-frame", "600")
	env.Run(t, dockertest.Spec{Name: sickOne, Labels: map[string]string{label: "true"}, Args: []string{"--health-retries", "3"}})
	env.Run(t, dockertest.Spec{Name: crash, Labels: map[string]string{label: "true", label + ".action": "stop"}, Args: []string{"--health-retries", "3"},
		Env: map[string]string{"FIXTURE_EXIT_AFTER": "500ms", "FIXTURE_EXIT_CODE": "3"}})

	d := h.got.wait(t, wait, crash+" dry-run decision", kindOf(events.RestartRequested, crash))
	if d.Data.Action != config.ActionNotify || !d.Data.DryRun || d.Data.Reason != "exited with code 3" {
		t.Errorf("crash decision: action %q dry_run %v reason %q, want notify, true, exited with code 3", d.Data.Action, d.Data.DryRun, d.Data.Reason)
	}

	// Unhealthy turns until the frame limit: two decisions fill the frame,
	// the next is the frame limit, as it would be with restarts.
	limited := skipped(sickOne, events.ReasonFrameLimit)
	decided := func(e events.Event) bool { return kindOf(events.RestartRequested, sickOne)(e) || limited(e) }
	dockerEvents.Wait(t, wait, sickOne+" healthy", dockertest.Is(sickOne, "health_status: healthy"))
	for i := 0; h.got.count(limited) == 0; i++ {
		if i == 6 {
			t.Fatalf("no frame limit after %d unhealthy turns", i)
		}
		n := h.got.count(decided)
		sick(t, sickOne)
		h.got.waitNth(t, wait, sickOne+" decided", n+1, decided)
		healthy := dockertest.Is(sickOne, "health_status: healthy")
		seen := len(dockerEvents.All(healthy))
		if out, err := dockertest.Docker("exec", sickOne, "/fixture", "ctl", "well"); err != nil {
			t.Fatalf("make %s well: %v %s", sickOne, err, out)
		}
		dockerEvents.WaitNth(t, wait, sickOne+" healthy again", seen+1, healthy)
	}
	first := h.got.wait(t, wait, "frame limit", limited)
	reqs := h.got.log.All(kindOf(events.RestartRequested, sickOne))
	before := 0
	for _, r := range reqs {
		if !r.Data.DryRun || r.Data.Action != config.ActionNotify {
			t.Errorf("decision %s: dry_run %v action %q", r.ID, r.Data.DryRun, r.Data.Action)
		}
		if !r.Time.After(first.Time) {
			before++
		}
	}
	if before != 2 {
		t.Errorf("%d dry-run decisions before the frame limit, want max_restarts_in_frame (2)", before)
	}

	if got := touched(dockerEvents, sickOne); len(got) > 0 {
		t.Errorf("%s was acted on in a dry run: %s", sickOne, got[0].Action)
	}
	if got := dockerEvents.All(dockertest.Is(crash, "start")); len(got) != 1 {
		t.Errorf("%s started %d times in a dry run, want once (by the test)", crash, len(got))
	}
	st, err := h.Status(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	var got struct {
		DryRun bool `json:"dry_run"`
	}
	if err := json.Unmarshal(b, &got); err != nil || !got.DryRun {
		t.Errorf("status JSON %s: want dry_run true", b)
	}
}
