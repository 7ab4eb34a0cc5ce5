package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// succeededFor matches a dependent's restart for parent with reason.
func succeededFor(container, parent, reason string) func(events.Event) bool {
	return func(e events.Event) bool {
		return e.Kind() == events.RestartSucceeded && e.Subject == container && e.Data.Parent == parent && e.Data.Reason == reason
	}
}

// sidecar runs a selected parent and a selected child on its network, and
// waits for both to be healthy.
func sidecar(t *testing.T, dockerEvents *dockertest.Events, label, parent, child string, parentArgs []string, childLabels map[string]string) {
	t.Helper()
	env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}, Args: parentArgs})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	labels := map[string]string{label: "true"}
	for k, v := range childLabels {
		labels[k] = v
	}
	env.Run(t, dockertest.Spec{Name: child, Labels: labels, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))
}

// waitServing waits for a fixture without a health check to serve.
func waitServing(t *testing.T, name string) {
	t.Helper()
	testkit.Eventually(t, wait, name+" to serve", func() (string, bool) {
		out, err := dockertest.Docker("exec", name, "/fixture", "health")
		return fmt.Sprintf("%v %s", err, out), err == nil
	})
}

func reaches(t *testing.T, child, what string) {
	t.Helper()
	if out, err := dockertest.Docker("exec", child, "/fixture", "probe", "127.0.0.1:8080"); err != nil {
		t.Errorf("%s cannot reach its parent %s: %v %s", child, what, err, out)
	}
}

// #15 item 1: a running dependent is restarted after the healer restarts
// its parent, through its own budget: one skipped for its
// seconds_between_restarts is restarted when that has passed.
func TestDependentRestartedWithParent(t *testing.T) {
	label := "hmd-depwith-" + env.RunID
	parent, child := "hmd-depwith-vpn-"+env.RunID, "hmd-depwith-app-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	sidecar(t, dockerEvents, label, parent, child, nil, map[string]string{label + ".seconds_between_restarts": "8"})

	sick(t, parent)
	first := h.got.wait(t, wait, child+" restarted after its parent", succeededFor(child, parent, heal.ParentRestartedReason(parent)))
	pOK := h.got.wait(t, wait, parent+" restarted", kindOf(events.RestartSucceeded, parent))
	if !first.Time.After(pOK.Time) {
		t.Errorf("%s restarted at %s, before its parent's restart ended at %s", child, first.Time, pOK.Time)
	}
	reaches(t, child, "after the first heal")

	// Again at once: the child's own 8 s between restarts holds, and it is
	// restarted when they have passed, not forgotten.
	dockerEvents.WaitNth(t, wait, parent+" healthy again", 2, dockertest.Is(parent, "health_status: healthy"))
	sick(t, parent)
	h.got.waitNth(t, wait, parent+" restarted again", 2, kindOf(events.RestartSucceeded, parent))
	skip := h.got.wait(t, wait, child+" skipped for its budget", func(e events.Event) bool {
		return skipped(child, heal.ReasonBetweenRestarts)(e) && e.Data.Parent == parent
	})
	if skip.Data.RetryAt == nil {
		t.Fatalf("skip of %s without a retry time: %+v", child, skip.Data)
	}
	second := h.got.waitNth(t, wait, child+" restarted when its budget allows", 2, succeededFor(child, parent, heal.ParentRestartedReason(parent)))
	if second.Time.Before(*skip.Data.RetryAt) {
		t.Errorf("%s restarted at %s, before its retry time %s", child, second.Time, *skip.Data.RetryAt)
	}
	if second.Data.Attempt != 2 {
		t.Errorf("%s's second restart counted as attempt %d, want 2", child, second.Data.Attempt)
	}
	reaches(t, child, "after the second heal")
}

// #15 item 2: a dependent that dies with its parent is started once the
// parent runs again, whoever started it: Docker's restart policy or a
// user's docker start. One that a user stopped stays stopped.
func TestDependentDiedWithParentIsStarted(t *testing.T) {
	label := "hmd-depdied-" + env.RunID
	parent, child := "hmd-depdied-vpn-"+env.RunID, "hmd-depdied-app-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	// heal_exited off: the child's start is owed to its parent alone.
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label, "--heal-exited=false"}, fast...)...)
	// No health checks: a probe failing as the process exits would have
	// the healer restart what Docker's restart policy is restarting.
	env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}, Args: []string{"--restart", "on-failure", "--no-healthcheck"}})
	dockerEvents.Wait(t, wait, parent+" started", dockertest.Is(parent, "start"))
	env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent, "--no-healthcheck"}})
	dockerEvents.Wait(t, wait, child+" started", dockertest.Is(child, "start"))
	waitServing(t, child)
	exit := func(name string) {
		t.Helper()
		// The process answers, then exits: an error here is a lost answer.
		_, _ = dockertest.Docker("exec", name, "/fixture", "ctl", "exit", "3")
	}

	// Docker's restart policy restarts the parent; the child died with it.
	exit(parent)
	exit(child)
	ok := h.got.wait(t, wait, child+" started after its parent's restart by Docker", succeededFor(child, parent, heal.DiedWithParentReason(parent)))
	if ok.Data.Attempt != 1 {
		t.Errorf("attempt %d, want 1", ok.Data.Attempt)
	}
	waitServing(t, child)
	reaches(t, child, "after Docker restarted it")

	// A user stops and starts the parent; the child dies meanwhile.
	if _, err := dockertest.Docker("stop", "-t", "2", parent); err != nil {
		t.Fatal(err)
	}
	exit(child)
	dockerEvents.WaitNth(t, wait, child+" died again", 2, dockertest.Is(child, "die"))
	if _, err := dockertest.Docker("start", parent); err != nil {
		t.Fatal(err)
	}
	h.got.waitNth(t, wait, child+" started after the user's docker start of its parent", 2, succeededFor(child, parent, heal.DiedWithParentReason(parent)))
	waitServing(t, child)
	reaches(t, child, "after the user started it")

	// A user stops the child, then the parent dies and is restarted: the
	// child stays stopped.
	if _, err := dockertest.Docker("stop", "-t", "2", child); err != nil {
		t.Fatal(err)
	}
	exit(parent)
	h.got.wait(t, wait, child+" left stopped", func(e events.Event) bool {
		return skipped(child, heal.ReasonUserStopped)(e) && e.Data.Parent == parent
	})
	if st := dockertest.Inspect(t, child); st.Running {
		t.Errorf("%s running again after the user's docker stop", child)
	}
	if n := h.got.count(kindOf(events.RestartRequested, child)); n != 2 {
		t.Errorf("%d starts of %s, want 2", n, child)
	}
}

// sortedFields is s's space-separated fields, sorted: the daemon lists
// mounts in no set order.
func sortedFields(s string) string {
	f := strings.Fields(s)
	slices.Sort(f)
	return strings.Join(f, " ")
}

// inspectJSON reads one docker inspect template of a container.
func inspectJSON(t *testing.T, name, format string) string {
	t.Helper()
	out, err := dockertest.Docker("inspect", "--format", format, name)
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return out
}

// The parts of a container a recreate must keep.
const keptFormat = `{{json .Config.Image}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Config.Env}} {{json .Config.Labels}} ` +
	`{{json .Config.Healthcheck}} {{json .Config.StopSignal}} {{json .Config.StopTimeout}} {{json .HostConfig.RestartPolicy}} ` +
	`{{json .HostConfig.Memory}} {{json .HostConfig.Binds}} {{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}} {{end}}`

// #15 item 3: when the parent is removed and run again under its name, a
// selected dependent still pointing at the old id is recreated on the new
// one, keeping its configuration, volumes and history; one labelled
// recreate=false is only reported.
func TestDependentReattachedToRecreatedParent(t *testing.T) {
	label := "hmd-reatt-" + env.RunID
	parent, child, stay := "hmd-reatt-vpn-"+env.RunID, "hmd-reatt-app-"+env.RunID, "hmd-reatt-stay-"+env.RunID
	vol := "hmd-reatt-data-" + env.RunID
	t.Cleanup(func() {
		_, _ = dockertest.Docker("rm", "-f", "-v", child)
		_, _ = dockertest.Docker("volume", "rm", "-f", vol)
	})
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	oldParent := env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	oldChild := env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true", "app.role": "sidecar"},
		Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081", "APP_SETTING": "kept"},
		Args: []string{"--network", "container:" + parent, "--restart", "unless-stopped", "--stop-timeout", "7", "--stop-signal", "SIGINT",
			"--memory", "64m", "-v", vol + ":/data", "-v", "/anon"}})
	env.Run(t, dockertest.Spec{Name: stay, Labels: map[string]string{label: "true", label + ".recreate": "false"},
		Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8082"}, Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))
	if _, err := dockertest.Docker("exec", child, "/fixture", "ctl", "sick"); err != nil {
		t.Fatal(err)
	}
	// One restart of its own, so there is a budget to carry over.
	h.got.wait(t, wait, child+" restarted for itself", kindOf(events.RestartSucceeded, child))
	dockerEvents.WaitNth(t, wait, child+" healthy after its restart", 2, dockertest.Is(child, "health_status: healthy"))
	before := inspectJSON(t, child, keptFormat)
	if !strings.Contains(before, "volume::/anon") && !strings.Contains(before, ":/anon") {
		t.Fatalf("no anonymous volume in %s", before)
	}

	if _, err := dockertest.Docker("rm", "-f", oldParent); err != nil {
		t.Fatal(err)
	}
	newParent := env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}})

	req := h.got.wait(t, wait, child+" recreate requested", kindOf(events.RecreateRequested, child))
	if req.Data.Parent != parent || req.Data.Reason != heal.ParentRecreatedReason(parent) {
		t.Errorf("recreate request %+v: want parent %s", req.Data, parent)
	}
	done := h.got.wait(t, wait, child+" recreated", kindOf(events.Recreated, child))
	newChild := done.Data.NewContainerID
	if done.Data.ContainerID != oldChild || newChild == "" || newChild == oldChild {
		t.Fatalf("recreated %s as %s: want the old id %s and a new one", done.Data.ContainerID, newChild, oldChild)
	}
	if got := inspectJSON(t, child, "{{.Id}} {{.HostConfig.NetworkMode}} {{.State.Running}}"); got != newChild+" container:"+newParent+" true" {
		t.Errorf("%s is %q, want the new id on container:%s, running", child, got, newParent)
	}
	after := inspectJSON(t, child, keptFormat)
	// The anonymous volume is the same one, mounted by name.
	if sortedFields(after) != sortedFields(before) {
		t.Errorf("configuration changed by the recreate:\nbefore %s\nafter  %s", before, after)
	}
	dockerEvents.Wait(t, wait, child+" healthy on the new parent", func(e dockertest.Event) bool {
		return dockertest.Is(child, "health_status: healthy")(e) && e.ID == newChild
	})
	reaches(t, child, "after the recreate")
	if out, err := dockertest.Docker("ps", "-a", "--filter", "name=hmd-reatt-app", "--format", "{{.Names}}"); err != nil || out != child {
		t.Errorf("containers left by the recreate: %q (%v), want only %s", out, err, child)
	}

	// The history goes on under the name: the next restart counts on.
	sick(t, child)
	again := h.got.wait(t, wait, child+" restarted after the recreate", func(e events.Event) bool {
		return kindOf(events.RestartSucceeded, child)(e) && e.Data.ContainerID == newChild
	})
	if again.Data.Attempt < 2 {
		t.Errorf("restart after the recreate: attempt %d, want the count of %s's history going on (2 or more)", again.Data.Attempt, child)
	}

	// recreate=false: reported, left pointing at the old parent.
	h.got.wait(t, wait, stay+" reported", skipped(stay, heal.ReasonRecreateOff))
	if got := inspectJSON(t, stay, "{{.HostConfig.NetworkMode}}"); got != "container:"+oldParent {
		t.Errorf("%s now on %s, want left on container:%s", stay, got, oldParent)
	}
	if n := h.got.count(kindOf(events.RecreateRequested, stay)); n != 0 {
		t.Errorf("%d recreates of %s, labelled recreate=false", n, stay)
	}
}

// #15 item 5: with docker-compose v1, recreating only the parent
// (up --force-recreate --no-deps vpn) leaves app on the old id; the healer
// re-attaches it, and a following up -d leaves it alone, its config hash
// still matching.
func TestDependentComposeV1ServiceNetworkReattached(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed (.ci/run installs Debian's package)")
	}
	label := "hmd-cvpn-" + env.RunID
	project := "hmdcvpn" + strings.ReplaceAll(env.RunID, "-", "")
	vpn, app := project+"_vpn_1", project+"_app_1"
	compose := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("docker-compose", append([]string{"-p", project, "-f", "testdata/compose-vpn.yml"}, args...)...)
		cmd.Env = append(os.Environ(), "HMD_IMAGE="+env.Image, "HMD_RUN="+env.RunID, "HMD_LABEL="+label)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		cmd := exec.Command("docker-compose", "-p", project, "-f", "testdata/compose-vpn.yml", "down", "--remove-orphans", "-v")
		cmd.Env = append(os.Environ(), "HMD_IMAGE="+env.Image, "HMD_RUN="+env.RunID, "HMD_LABEL="+label)
		_ = cmd.Run()
	})
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	compose("up", "-d")
	dockerEvents.Wait(t, wait, app+" healthy", dockertest.Is(app, "health_status: healthy"))
	oldApp := inspectJSON(t, app, "{{.Id}}")
	hash := inspectJSON(t, app, `{{index .Config.Labels "com.docker.compose.config-hash"}}`)

	compose("up", "-d", "--force-recreate", "--no-deps", "vpn")
	newVpn := inspectJSON(t, vpn, "{{.Id}}")
	done := h.got.wait(t, wait, app+" recreated", kindOf(events.Recreated, app))
	if done.Data.ContainerID != oldApp || done.Data.Parent != vpn {
		t.Errorf("recreated %s for %s, want %s for %s", events.ShortID(done.Data.ContainerID), done.Data.Parent, events.ShortID(oldApp), vpn)
	}
	if got := inspectJSON(t, app, "{{.Id}} {{.HostConfig.NetworkMode}} {{.State.Running}}"); got != done.Data.NewContainerID+" container:"+newVpn+" true" {
		t.Errorf("%s is %q, want %s on container:%s, running", app, got, done.Data.NewContainerID, newVpn)
	}
	dockerEvents.Wait(t, wait, app+" healthy on the new vpn", func(e dockertest.Event) bool {
		return dockertest.Is(app, "health_status: healthy")(e) && e.ID == done.Data.NewContainerID
	})
	reaches(t, app, "after the re-attach")

	// Compose finds nothing to do for app: same config hash, same container.
	out := compose("up", "-d")
	if got := inspectJSON(t, app, "{{.Id}}"); got != done.Data.NewContainerID {
		t.Errorf("docker-compose up -d replaced the re-attached app (%s, was %s):\n%s", events.ShortID(got), events.ShortID(done.Data.NewContainerID), out)
	}
	if got := inspectJSON(t, app, `{{index .Config.Labels "com.docker.compose.config-hash"}}`); got != hash {
		t.Errorf("config hash %s, want %s", got, hash)
	}
	if strings.Contains(out, "Recreating "+app) {
		t.Errorf("docker-compose up -d recreated %s:\n%s", app, out)
	}
}

// #15 items 4 and 6: compose v2's depends_on with restart: true, from the
// labels compose writes. When the healer restarts db, web (restart: true)
// is restarted after it and api (restart: true on web) after web, in that
// order; worker (restart: false) and a container of another project are
// left alone.
func TestDependentComposeDependsOnRestart(t *testing.T) {
	label := "hmd-dependson-" + env.RunID
	project := "hmddependson" + strings.ReplaceAll(env.RunID, "-", "")
	name := func(service string) string { return project + "-" + service + "-1" }
	db, web, api, worker, other := name("db"), name("web"), name("api"), name("worker"), "hmddependsonother-web-1-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	run := func(container, project, service, dependsOn string) {
		labels := map[string]string{label: "true", "com.docker.compose.project": project, "com.docker.compose.service": service,
			"com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
		if dependsOn != "" {
			labels["com.docker.compose.depends_on"] = dependsOn
		}
		env.Run(t, dockertest.Spec{Name: container, Labels: labels})
	}
	run(db, project, "db", "")
	run(web, project, "web", "db:service_healthy:true,cache:service_started:false")
	run(api, project, "api", "web:service_started:true")
	run(worker, project, "worker", "db:service_started:false")
	run(other, "hmddependsonother", "web", "db:service_started:true")
	for _, c := range []string{db, web, api, worker, other} {
		dockerEvents.Wait(t, wait, c+" healthy", dockertest.Is(c, "health_status: healthy"))
	}

	sick(t, db)
	dbOK := h.got.wait(t, wait, db+" restarted", kindOf(events.RestartSucceeded, db))
	webOK := h.got.wait(t, wait, web+" restarted after db", succeededFor(web, db, heal.ComposeRestartedReason(db)))
	apiOK := h.got.wait(t, wait, api+" restarted after web", succeededFor(api, web, heal.ComposeRestartedReason(web)))
	if !dbOK.Time.Before(webOK.Time) || !webOK.Time.Before(apiOK.Time) {
		t.Errorf("restarts out of order: db %s, web %s, api %s", dbOK.Time, webOK.Time, apiOK.Time)
	}
	dockerEvents.WaitNth(t, wait, api+" healthy again", 2, dockertest.Is(api, "health_status: healthy"))
	for _, c := range []string{worker, other} {
		// Their own health may fail on a loaded machine: only a restart on
		// db's account is wrong.
		if n := h.got.count(func(e events.Event) bool { return kindOf(events.RestartRequested, c)(e) && e.Data.Parent != "" }); n != 0 {
			t.Errorf("%d restarts of %s for a parent, which does not depend on %s with restart: true", n, c, db)
		}
	}
}

// #15 item 6: a selected dependent of a parent that is not selected is
// reported when the parent starts again, and not acted on.
func TestDependentOfUnselectedParentIsReported(t *testing.T) {
	label := "hmd-depunsel-" + env.RunID
	parent, child := "hmd-depunsel-vpn-"+env.RunID, "hmd-depunsel-app-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: parent})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))
	before := dockertest.Inspect(t, child).StartedAt

	if _, err := dockertest.Docker("restart", "-t", "1", parent); err != nil {
		t.Fatal(err)
	}
	skip := h.got.wait(t, wait, child+" reported", skipped(child, heal.ReasonNotSelected))
	if skip.Data.Parent != parent {
		t.Errorf("reported for parent %q, want %s", skip.Data.Parent, parent)
	}
	if n := h.got.count(kindOf(events.RestartRequested, child)); n != 0 {
		t.Errorf("%d restarts of %s, whose parent is not selected", n, child)
	}
	if st := dockertest.Inspect(t, child); !st.StartedAt.Equal(before) {
		t.Errorf("%s restarted: started at %s, was %s", child, st.StartedAt, before)
	}
}

// #15 item 3, failing: a socket proxy that refuses POST /containers/create
// leaves the dependent as it was, and recreate_failed names the endpoint.
func TestDependentRecreateRefusedByProxyLeavesItAsItWas(t *testing.T) {
	label := "hmd-reattfail-" + env.RunID
	parent, child := "hmd-reattfail-vpn-"+env.RunID, "hmd-reattfail-app-"+env.RunID
	proxy, err := dockertest.StartProxy(t.TempDir(), "HEAD /_ping", "GET /_ping", "GET /info", "GET /events", "GET /containers/json",
		"GET /containers/[^/]+/json", "POST /containers/[^/]+/restart", "POST /containers/[^/]+/start")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dockerEvents := env.WatchEvents(t)
	// The in-process healer reads DOCKER_HOST as the binary does, when it
	// starts; the docker CLI of the test goes on without the proxy.
	orig, had := os.LookupEnv("DOCKER_HOST")
	t.Setenv("DOCKER_HOST", proxy.Host())
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	if had {
		os.Setenv("DOCKER_HOST", orig)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	oldParent := env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}})
	dockerEvents.Wait(t, wait, parent+" healthy", dockertest.Is(parent, "health_status: healthy"))
	oldChild := env.Run(t, dockertest.Spec{Name: child, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8081"},
		Args: []string{"--network", "container:" + parent}})
	dockerEvents.Wait(t, wait, child+" healthy", dockertest.Is(child, "health_status: healthy"))

	if _, err := dockertest.Docker("rm", "-f", oldParent); err != nil {
		t.Fatal(err)
	}
	env.Run(t, dockertest.Spec{Name: parent, Labels: map[string]string{label: "true"}})
	failed := h.got.wait(t, wait, child+" recreate failed", kindOf(events.RecreateFailed, child))
	if !strings.Contains(failed.Data.Error, "POST /containers/create") || failed.Data.Parent != parent {
		t.Errorf("recreate_failed %+v: want the refused endpoint POST /containers/create named, and the parent", failed.Data)
	}
	if got := inspectJSON(t, child, "{{.Id}} {{.HostConfig.NetworkMode}}"); got != oldChild+" container:"+oldParent {
		t.Errorf("%s is %q after a failed recreate, want it as it was: %s container:%s", child, got, oldChild, oldParent)
	}
	if out, err := dockertest.Docker("ps", "-a", "--filter", "name=hmd-reattfail-app", "--format", "{{.Names}}"); err != nil || out != child {
		t.Errorf("containers after the failed recreate: %q (%v), want only %s", out, err, child)
	}
}

// #15 item 6: a chain of networks (vpn ← app ← agent, each joined to the
// one before) is restarted in order after the healer restarts vpn, and the
// last one reaches the first again.
func TestDependentChainRestartedInOrder(t *testing.T) {
	label := "hmd-depchain-" + env.RunID
	a, b, c := "hmd-depchain-vpn-"+env.RunID, "hmd-depchain-app-"+env.RunID, "hmd-depchain-agent-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	sidecar(t, dockerEvents, label, a, b, nil, nil)
	env.Run(t, dockertest.Spec{Name: c, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_ADDR": "127.0.0.1:8082"},
		Args: []string{"--network", "container:" + b}})
	dockerEvents.Wait(t, wait, c+" healthy", dockertest.Is(c, "health_status: healthy"))

	sick(t, a)
	aOK := h.got.wait(t, wait, a+" restarted", kindOf(events.RestartSucceeded, a))
	bOK := h.got.wait(t, wait, b+" restarted after "+a, succeededFor(b, a, heal.ParentRestartedReason(a)))
	cOK := h.got.wait(t, wait, c+" restarted after "+b, succeededFor(c, b, heal.ParentRestartedReason(b)))
	if !aOK.Time.Before(bOK.Time) || !bOK.Time.Before(cOK.Time) {
		t.Errorf("restarts out of order: %s %s, %s %s, %s %s", a, aOK.Time, b, bOK.Time, c, cOK.Time)
	}
	reaches(t, c, "at the end of the chain")
	if n := h.got.count(kindOf(events.RestartRequested, c)); n != 1 {
		t.Errorf("%d restarts of %s, want 1", n, c)
	}
}
