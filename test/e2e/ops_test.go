package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// runHealerCmd runs the healer binary with args and returns its stdout,
// stderr and exit code.
func runHealerCmd(t *testing.T, environ []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(healerBin, args...)
	cmd.Env = append(os.Environ(), environ...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run healer %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// healer test-notify sends one message to the settings' target, the URL
// file's and a running container's own, and reports each: the failing one
// with its status and body, and exit 1; --url tests one URL alone.
func TestTestNotifyReportsEveryTarget(t *testing.T) {
	label := "hmd-tn-" + env.RunID
	okSrv := testkit.NewSlack(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "channel_is_archived \x1b[31m", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	file := filepath.Join(t.TempDir(), "urls")
	if err := os.WriteFile(file, []byte(okSrv.URL+"/hooks/from-file-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := "hmd-tn-" + env.RunID
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".notify_url": bad.URL + "/hooks/own-s3cret"}})
	// Not selected: its target is not the healer's business.
	env.Run(t, dockertest.Spec{Name: name + "-off", Labels: map[string]string{label: "false", label + ".notify_url": bad.URL + "/hooks/off-s3cret"}})

	out, stderr, code := runHealerCmd(t, []string{"HMD_NOTIFY_URL=" + okSrv.URL + "/hooks/main-s3cret", "HMD_NOTIFY_URL_FILE=" + file},
		"test-notify", "--container-label", label)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (one target failed)\n%s%s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per target (3):\n%s%s", out, stderr)
	}
	okHost := strings.TrimPrefix(okSrv.URL, "http://")
	badHost := strings.TrimPrefix(bad.URL, "http://")
	for i, want := range [][]string{
		{"http://" + okHost + "/[redacted]", "settings", "OK"},
		{"http://" + okHost + "/[redacted]", "settings", "OK"},
		{"http://" + badHost + "/[redacted]", "container " + name, "FAILED: 500 Internal Server Error: channel_is_archived"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %q", i+1, w, lines[i])
			}
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "\x1b") || strings.Contains(out, name+"-off") {
		t.Errorf("the output shows a secret path, a raw escape, or an unselected container:\n%q", out)
	}
	if got := okSrv.Texts.All(func(s string) bool { return strings.Contains(s, "HealMyDocker test message") }); len(got) != 2 {
		t.Errorf("the OK receiver got %d test messages, want 2: %q", len(got), got)
	}

	out, stderr, code = runHealerCmd(t, nil, "test-notify", "--container-label", label, "--url", okSrv.URL+"/hooks/once-s3cret")
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "--url") || !strings.HasSuffix(strings.TrimSpace(out), "OK") {
		t.Errorf("--url: exit %d:\n%s%s", code, out, stderr)
	}
	out, _, code = runHealerCmd(t, nil, "test-notify", "--container-label", label, "--url", bad.URL+"/x")
	if code != 1 || !strings.Contains(out, "FAILED: 500") {
		t.Errorf("--url to the failing receiver: exit %d: %s", code, out)
	}
	// A Shoutrrr URL that cannot be reached says Shoutrrr's error.
	out, _, code = runHealerCmd(t, nil, "test-notify", "--container-label", label, "--url", fmt.Sprintf("gotify://127.0.0.1:%d/AbCdEfGhIjKlMnO", testkit.FreePort(t)))
	if code != 1 || !strings.Contains(out, "FAILED: send failed") || strings.Contains(out, "AbCdEfGhIjKlMnO") {
		t.Errorf("--url to a closed Gotify port: exit %d: %s", code, out)
	}
}

// healer check explains every container: selected or not and why, the
// labels that changed its policy, health, and warnings; as a table and as
// JSON.
func TestCheckExplainsContainers(t *testing.T) {
	label := "hmd-check-" + env.RunID
	n := func(s string) string { return "hmd-check-" + s + "-" + env.RunID }
	on := map[string]string{label: "true"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{label: "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	env.Run(t, dockertest.Spec{Name: n("sel"), Labels: with(label+".max_restarts_in_frame", "1", label+".notify_log_lines", "3", label+".action", "notify")})
	env.Run(t, dockertest.Spec{Name: n("off"), Labels: map[string]string{label: "false"}})
	env.Run(t, dockertest.Spec{Name: n("swarm"), Labels: with("com.docker.swarm.task.id", "x1y2z3")})
	env.Run(t, dockertest.Spec{Name: n("oneoff"), Labels: with("com.docker.compose.oneoff", "True")})
	env.Run(t, dockertest.Spec{Name: n("bad"), Labels: with(label+".frame_size", "soon")})
	env.Run(t, dockertest.Spec{Name: n("nohc"), Labels: on, Args: []string{"--no-healthcheck"}})
	paused := env.Run(t, dockertest.Spec{Name: n("paused"), Labels: on})
	if _, err := dockertest.Docker("pause", paused); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("unpause", paused) })
	dir := t.TempDir()

	out, stderr, code := runHealerCmd(t, nil, "check", "--container-label", label, "--data-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("check -o json: exit %d\n%s%s", code, out, stderr)
	}
	var r cli.CheckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check -o json is not JSON: %v\n%s", err, out)
	}
	if r.Docker.Name == "" || r.Docker.Version == "" || r.Docker.APIVersion == "" || !r.DataDir.Exists || !r.DataDir.Writable || r.DataDir.Locked {
		t.Errorf("docker or data dir: %+v %+v", r.Docker, r.DataDir)
	}
	got := map[string]cli.CheckContainer{}
	for _, c := range r.Containers {
		got[c.Name] = c
	}
	for _, tc := range []struct {
		name     string
		selected bool
		why      string
		warning  string
	}{
		{n("sel"), true, label + "=true", ""},
		{n("off"), false, label + "=false", ""},
		{n("swarm"), false, "a Swarm task (com.docker.swarm.task.id)", ""},
		{n("oneoff"), false, "a compose one-off (com.docker.compose.oneoff=True)", ""},
		{n("bad"), true, label + "=true", `invalid label ` + label + `.frame_size="soon": expected a duration`},
		{n("nohc"), true, label + "=true", "no HEALTHCHECK: healed only when it crashes"},
		{n("paused"), false, "paused", ""},
	} {
		c, ok := got[tc.name]
		if !ok {
			t.Errorf("%s is not in the report", tc.name)
			continue
		}
		if c.Selected != tc.selected || !strings.HasPrefix(c.Why, tc.why) {
			t.Errorf("%s: selected %v (%q), want %v (%q...)", tc.name, c.Selected, c.Why, tc.selected, tc.why)
		}
		warnings := strings.Join(c.Warnings, "; ")
		if (tc.warning == "") != (warnings == "") || !strings.Contains(warnings, tc.warning) {
			t.Errorf("%s: warnings %q, want %q", tc.name, warnings, tc.warning)
		}
	}
	sel := got[n("sel")]
	if sel.Policy["max_restarts_in_frame"] != "1" || sel.Policy["notify_log_lines"] != "3" || sel.Policy["action"] != "notify" ||
		sel.Policy["frame_size"] != r.Defaults["frame_size"] || r.Defaults["action"] != "restart" ||
		!sel.Healthcheck || sel.Health == "" || len(sel.Labels) != 3 {
		t.Errorf("the selected container's policy, labels or health: %+v", sel)
	}
	if nohc := got[n("nohc")]; nohc.Healthcheck {
		t.Errorf("--no-healthcheck reported with a health check: %+v", nohc)
	}

	table, stderr, code := runHealerCmd(t, nil, "check", "--container-label", label, "--data-dir", dir)
	if code != 0 || !strings.Contains(table, "docker:   ok: ") || !strings.Contains(table, "not locked") {
		t.Fatalf("check: exit %d\n%s%s", code, table, stderr)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	for name, want := range map[string][]string{
		n("sel"):    {"running", "yes", "max_restarts_in_frame=1", "notify_log_lines=3", "action=notify"},
		n("off"):    {"no", label + "=false"},
		n("swarm"):  {"no", "Swarm task"},
		n("oneoff"): {"no", "one-off"},
		n("bad"):    {"yes", "invalid label"},
		n("nohc"):   {"yes", "no healthcheck", "healed only when it crashes"},
		n("paused"): {"paused", "no"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[name], w) {
				t.Errorf("table row of %s lacks %q: %q", name, w, rows[name])
			}
		}
	}

	// A bad setting: exit 2, as for the healer itself.
	if _, stderr, code := runHealerCmd(t, nil, "check", "--container-label", label, "--frame-size", "soon"); code != 2 || !strings.Contains(stderr, "frame_size") {
		t.Errorf("check with a bad setting: exit %d: %s", code, stderr)
	}
}

// healer check NAME shows the container's history and latest decision:
// through the listener of a running healer, with a clear message when the
// healer runs without one, and from the data dir once it stopped.
func TestCheckNameShowsTheHistory(t *testing.T) {
	label := "hmd-checkh-" + env.RunID
	name := "hmd-checkh-" + env.RunID
	dir := t.TempDir()
	natsPort := testkit.FreePort(t)
	h := startHealer(t, dir, "--container-label", label, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort),
		"--nats-user", "healer", "--nats-password", "hp", "--nats-reader-user", "reader", "--nats-reader-password", "rp")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	h.got.wait(t, wait, "restart", kindOf(events.RestartSucceeded, name))

	out, _, code := runHealerCmd(t, nil, "check", name, "--container-label", label, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "locked by a running healer") || !strings.Contains(out, "history:   unavailable: a healer is running") || !strings.Contains(out, "--nats-url") {
		t.Errorf("check NAME on a running healer's dir without --nats-url: exit %d\n%s", code, out)
	}

	reader := []string{fmt.Sprintf("HMD_NATS_URL=nats://127.0.0.1:%d", natsPort), "HMD_NATS_USER=reader", "HMD_NATS_PASSWORD=rp"}
	out, stderr, code := runHealerCmd(t, reader, "check", name, "--container-label", label, "--data-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("check NAME through the listener: exit %d\n%s%s", code, out, stderr)
	}
	var r cli.CheckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(r.Containers) != 1 || r.Containers[0].Name != name || !r.Containers[0].Selected || r.Containers[0].Policy == nil {
		t.Errorf("check NAME explains %+v", r.Containers)
	}
	if r.History == nil || r.History.Source != "NATS listener" || r.History.Latest == nil {
		t.Fatalf("no history through the listener: %+v", r.History)
	}
	if l := r.History.Latest; l.Kind != events.RestartRequested || l.Attempt != 1 || l.FrameRestarts != 1 || l.GaveUp {
		t.Errorf("latest decision: %+v", *l)
	}
	if s := r.History.State; s == nil || s.Attempt != 1 || s.FrameRestarts != 1 || s.GaveUp || s.UserStopped || s.StartedAt.IsZero() {
		t.Errorf("folded state: %+v", s)
	}
	// Restarted once: another unhealthy now is a restart (the test's policy
	// allows it) or a skip with its reason; never nothing.
	if n := r.History.Next; n == nil || n.Verdict == "" || (n.Verdict != "restart" && n.Reason == "") {
		t.Errorf("check NAME does not say what an unhealthy now would bring: %+v", n)
	}
	for _, e := range r.History.Events {
		if e.Subject != name {
			t.Errorf("an event of another container: %+v", e)
		}
	}

	h.stop()
	out, stderr, code = runHealerCmd(t, nil, "check", name, "--container-label", label, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "from the data dir") || !strings.Contains(out, "latest decision: decision.restart_requested") ||
		!strings.Contains(out, "attempt 1, 1 restarts in its frame, given up: false") || !strings.Contains(out, "if it turned unhealthy now: ") ||
		!strings.Contains(out, "state:     attempt 1, 1 restarts in the frame started ") || !strings.Contains(out, "outcome.restart_succeeded") {
		t.Errorf("check NAME from a stopped healer's dir: exit %d\n%s%s", code, out, stderr)
	}
}
