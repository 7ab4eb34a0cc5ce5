package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

const wait = 60 * time.Second

// (a) heals a labelled container, (b) leaves unlabelled and excluded ones
// alone, (d) the history survives a restart of the healer.
func TestHealsLabelledUnhealthyContainer(t *testing.T) {
	label := "hmd-e2e-" + env.RunID
	sick := "hmd-sick-" + env.RunID
	plain := "hmd-plain-" + env.RunID
	excluded := "hmd-excluded-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	data := t.TempDir()
	h := startHealer(t, data, "--container-label", label)

	sickID := env.Run(t, dockertest.Spec{Name: sick, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1"}})
	plainID := env.Run(t, dockertest.Spec{Name: plain})
	excludedID := env.Run(t, dockertest.Spec{Name: excluded, Labels: map[string]string{label: "false"}})
	for _, name := range []string{sick, plain, excluded} {
		dockerEvents.Wait(t, wait, name+" healthy", dockertest.Is(name, "health_status: healthy"))
	}
	plainBefore, excludedBefore := dockertest.Inspect(t, plainID), dockertest.Inspect(t, excludedID)

	// The unselected ones turn unhealthy first: the healer reads events in
	// order, so once it has acted on the selected one it has seen them.
	for _, name := range []string{plain, excluded} {
		if _, err := dockertest.Docker("exec", name, "/fixture", "ctl", "sick"); err != nil {
			t.Fatal(err)
		}
		dockerEvents.Wait(t, wait, name+" unhealthy", dockertest.Is(name, "health_status: unhealthy"))
	}
	if _, err := dockertest.Docker("exec", sick, "/fixture", "ctl", "sick"); err != nil {
		t.Fatal(err)
	}
	unhealthy := dockerEvents.Wait(t, wait, sick+" unhealthy", dockertest.Is(sick, "health_status: unhealthy"))
	kill := dockerEvents.Wait(t, wait, sick+" kill", func(e dockertest.Event) bool {
		return dockertest.Is(sick, "kill")(e) && e.TimeNano > unhealthy.TimeNano
	})
	dockerEvents.Wait(t, wait, sick+" healthy after restart", func(e dockertest.Event) bool {
		return dockertest.Is(sick, "health_status: healthy")(e) && e.TimeNano > kill.TimeNano
	})
	t.Logf("unhealthy to kill: %s", time.Duration(kill.TimeNano-unhealthy.TimeNano))
	succeeded := h.got.wait(t, wait, "restart succeeded", kindOf(events.RestartSucceeded, sick))
	if succeeded.Data.ContainerID != sickID {
		t.Errorf("restart_succeeded names container %s, want %s", succeeded.Data.ContainerID, sickID)
	}
	if st := dockertest.Inspect(t, sickID); !st.Running || st.Health != "healthy" {
		t.Errorf("%s after heal: running=%v health=%s, want running and healthy", sick, st.Running, st.Health)
	}

	// (b) Nothing touched the others, and nothing about them was published.
	for _, name := range []string{plain, excluded} {
		for _, action := range []string{"kill", "stop", "restart", "die"} {
			if got := dockerEvents.All(dockertest.Is(name, action)); len(got) > 0 {
				t.Errorf("%s got %d %s events; it is not selected", name, len(got), action)
			}
		}
		if n := h.got.count(func(e events.Event) bool { return e.Subject == name }); n > 0 {
			t.Errorf("%d bus events about unselected %s", n, name)
		}
	}
	if st := dockertest.Inspect(t, plainID); !st.StartedAt.Equal(plainBefore.StartedAt) || st.Health != "unhealthy" {
		t.Errorf("%s: started %s (was %s), health %s: it was touched", plain, st.StartedAt, plainBefore.StartedAt, st.Health)
	}
	if st := dockertest.Inspect(t, excludedID); !st.StartedAt.Equal(excludedBefore.StartedAt) {
		t.Errorf("%s (label=false) was restarted", excluded)
	}

	// (d) Stop the healer; the history is in its data dir.
	h.stop()
	stored := history(t, data)
	var kinds []events.Kind
	ids := map[string]bool{}
	for _, e := range stored {
		if ids[e.ID] {
			t.Errorf("event %s stored twice", e.ID)
		}
		ids[e.ID] = true
		if e.Subject == sick {
			kinds = append(kinds, e.Kind())
		}
		if e.Subject == plain || e.Subject == excluded {
			t.Errorf("stored event about unselected container: %+v", e)
		}
	}
	for _, want := range []events.Kind{events.DockerUnhealthy, events.RestartRequested, events.DockerKill, events.DockerDie, events.DockerStart, events.RestartSucceeded, events.DockerHealthy} {
		if !slices.Contains(kinds, want) {
			t.Errorf("history of %s lacks %s; has %v", sick, want, kinds)
		}
	}
	var req, ok events.Event
	for _, e := range stored {
		switch {
		case e.Subject == sick && e.Kind() == events.RestartRequested:
			req = e
		case e.Subject == sick && e.Kind() == events.RestartSucceeded:
			ok = e
		}
	}
	if req.Data.Cause == "" || req.Data.Cause != ok.Data.Cause || !ids[req.Data.Cause] {
		t.Errorf("decision and outcome must name the stored unhealthy event as cause: %q, %q", req.Data.Cause, ok.Data.Cause)
	}
	for _, k := range []events.Kind{events.HealerStarted, events.DockerConnected, events.HealerStopped} {
		if !slices.ContainsFunc(stored, func(e events.Event) bool { return e.Kind() == k }) {
			t.Errorf("history lacks %s", k)
		}
	}
}

// (c) A container that was unhealthy before the healer started is healed.
func TestHealsContainerUnhealthyBeforeStart(t *testing.T) {
	label := "hmd-e2e-pre-" + env.RunID
	name := "hmd-pre-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	id := env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	unhealthy := dockerEvents.Wait(t, wait, name+" unhealthy", dockertest.Is(name, "health_status: unhealthy"))
	if got := dockerEvents.All(dockertest.Is(name, "kill")); len(got) > 0 {
		t.Fatalf("killed before the healer started")
	}

	h := startHealer(t, t.TempDir(), "--container-label", label)
	kill := dockerEvents.Wait(t, wait, name+" kill", func(e dockertest.Event) bool {
		return dockertest.Is(name, "kill")(e) && e.TimeNano > unhealthy.TimeNano
	})
	dockerEvents.Wait(t, wait, name+" healthy after restart", func(e dockertest.Event) bool {
		return dockertest.Is(name, "health_status: healthy")(e) && e.TimeNano > kill.TimeNano
	})
	obs := h.got.wait(t, wait, "reconciled unhealthy", kindOf(events.DockerUnhealthy, name))
	if !obs.Data.Reconciled || obs.Data.ContainerID != id {
		t.Errorf("observation %+v: want reconciled, container %s", obs.Data, id)
	}
	req := h.got.wait(t, wait, "restart requested", kindOf(events.RestartRequested, name))
	if req.Data.Cause != obs.ID {
		t.Errorf("decision cause %q, want %q", req.Data.Cause, obs.ID)
	}
	h.got.wait(t, wait, "restart succeeded", kindOf(events.RestartSucceeded, name))
}
