package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// buildImage builds the project's image FROM scratch around the healer
// built for this run, as `make image` does, and removes it when t ends.
func buildImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "bin", "image")
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(healerBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, "healer"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"notifier", "cleaner"} {
		if err := os.Symlink("healer", filepath.Join(img, l)); err != nil {
			t.Fatal(err)
		}
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "healmydocker:e2e-" + env.RunID
	if out, err := dockertest.Docker("build", "-q", "--label", dockertest.TestLabel+"="+env.RunID, "-t", tag, dir); err != nil {
		t.Fatalf("build the image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockertest.Docker("rmi", "-f", tag) })
	return tag
}

// stack runs docker-compose on one of deploy/'s files as project.
type stack struct {
	t       *testing.T
	file    string
	project string
	env     []string
}

func newStack(t *testing.T, file, project string, env ...string) *stack {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed (.ci/run installs Debian's package)")
	}
	s := &stack{t: t, file: "../../deploy/" + file, project: project, env: append(os.Environ(), env...)}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose("logs", "--no-color", "--tail", "60")
			t.Logf("%s logs:\n%s", project, out)
		}
		_, _ = s.compose("down", "-v", "--remove-orphans", "-t", "2")
	})
	return s
}

func (s *stack) compose(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", s.project, "-f", s.file}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *stack) must(args ...string) string {
	s.t.Helper()
	out, err := s.compose(args...)
	if err != nil {
		s.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// id is the container id of a service.
func (s *stack) id(service string) string {
	s.t.Helper()
	id := strings.TrimSpace(s.must("ps", "-q", service))
	if id == "" {
		s.t.Fatalf("service %s has no container", service)
	}
	return id
}

// ip is a service's address on one of the stack's networks.
func (s *stack) ip(service, network string) string {
	s.t.Helper()
	out, err := dockertest.Docker("inspect", "-f", `{{(index .NetworkSettings.Networks "`+s.project+"_"+network+`").IPAddress}}`, s.id(service))
	if err != nil || out == "" {
		s.t.Fatalf("address of %s on %s: %v %s", service, network, err, out)
	}
	return out
}

// healed waits for the daemon's kill and start of a sick fixture.
func healedByDocker(t *testing.T, ev *dockertest.Events, name string) {
	t.Helper()
	ev.Wait(t, 2*wait, name+" unhealthy", dockertest.Is(name, "health_status: unhealthy"))
	ev.Wait(t, wait, name+" killed", dockertest.Is(name, "kill"))
	ev.Wait(t, wait, name+" healthy again", func(e dockertest.Event) bool {
		return e.Name() == name && e.Action == "health_status: healthy"
	})
}

// (a) The all-in-one compose file heals a labelled fixture, and down
// leaves nothing but the data volume, whose history `healer events` reads.
func TestComposeAllInOne(t *testing.T) {
	image := buildImage(t)
	label := "hmd-aio-" + env.RunID
	name := "hmd-aio-" + env.RunID
	project := "hmdaio" + strings.ReplaceAll(env.RunID, "-", "")
	s := newStack(t, "compose.yaml", project, "HMD_IMAGE="+image, "HMD_CONTAINER_LABEL="+label)
	ev := env.WatchEvents(t)
	s.must("up", "-d")
	ev.Wait(t, 2*wait, "healer healthy", func(e dockertest.Event) bool {
		return strings.HasPrefix(e.Name(), project) && e.Action == "health_status: healthy"
	})
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms"}})
	healedByDocker(t, ev, name)

	s.must("down", "-t", "5")
	if out, _ := dockertest.Docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+project); out != "" {
		t.Errorf("down left containers: %s", out)
	}
	volume := project + "_healer-data"
	if _, err := dockertest.Docker("volume", "inspect", volume); err != nil {
		t.Fatalf("down removed the data volume: %v", err)
	}
	out, err := dockertest.Docker("run", "--rm", "--label", dockertest.TestLabel+"="+env.RunID, "-v", volume+":/data", image, "events", "--data-dir", "/data", "--container", name)
	if err != nil || !strings.Contains(out, string(events.RestartSucceeded)) {
		t.Errorf("healer events on the stopped stack's volume: %v\n%s", err, out)
	}
}

// (b, c, d) The split deployment: the healer heals, its notifier container
// tells a receiver on the compose network, an outside subscriber reads the
// restart with the reader's credentials and is refused a publish, the
// history is there after the stack restarts, and /metrics counts it.
func TestComposeSplit(t *testing.T) {
	image := buildImage(t)
	label := "hmd-split-" + env.RunID
	name := "hmd-split-" + env.RunID
	project := "hmdsplit" + strings.ReplaceAll(env.RunID, "-", "")
	envFile := filepath.Join(t.TempDir(), "split.env")
	const readerPass, token = "reader-pw-e2e", "http-token-e2e"
	if err := os.WriteFile(envFile, []byte("HMD_NATS_USER=hmd\nHMD_NATS_PASSWORD=healer-pw-e2e\nHMD_NATS_READER_USER=reader\nHMD_NATS_READER_PASSWORD="+readerPass+"\nHMD_HTTP_TOKEN="+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, "compose.split.yaml", project, "HMD_IMAGE="+image, "HMD_CONTAINER_LABEL="+label, "HMD_ENV_FILE="+envFile,
		"HMD_NOTIFY_URL=http://receiver:8080/hooks/e2e", "HMD_NOTIFY_LEVEL=debug")
	ev := env.WatchEvents(t)
	s.must("up", "-d")
	receiver := "hmd-split-receiver-" + env.RunID
	env.Run(t, dockertest.Spec{Name: receiver, Cmd: []string{"receive"}, Env: map[string]string{"FIXTURE_ADDR": "0.0.0.0:8080"},
		Args: []string{"--network", project + "_egress", "--network-alias", "receiver", "--no-healthcheck"}})
	ev.Wait(t, 2*wait, "healer healthy", func(e dockertest.Event) bool {
		return strings.HasPrefix(e.Name(), project) && e.Action == "health_status: healthy"
	})

	// The outside subscriber: a nats.go client as the reader user.
	natsURL := "nats://" + s.ip("healer", "bus") + ":4222"
	perms := make(chan error, 10)
	nc, err := nats.Connect(natsURL, nats.UserInfo("reader", readerPass), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perms <- err }))
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("hmd.*." + events.SanitizeToken(name) + ".outcome.restart_succeeded")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms"}})
	healedByDocker(t, ev, name)
	m, err := sub.NextMsg(wait)
	if err != nil {
		t.Fatalf("the subscriber did not see the restart: %v", err)
	}
	if e, err := events.Unmarshal(m.Data); err != nil || e.Subject != name {
		t.Errorf("subscriber got %v %+v", err, e)
	}
	if err := nc.Publish("hmd.x."+events.SanitizeToken(name)+".outcome.restart_succeeded", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-perms:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("publish as reader: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the reader's publish was not refused")
	}

	// The notifier container told the receiver, in Slack's format.
	logs := testkit.Eventually(t, wait, "the receiver to be told of "+name+"'s restart", func() (string, bool) {
		logs, _ := dockertest.Docker("logs", receiver)
		return logs, strings.Contains(logs, "webhook-bad") || strings.Contains(logs, name+": restarted")
	})
	if strings.Contains(logs, "webhook-bad") {
		t.Fatalf("the receiver got a payload that is not Slack's:\n%s", logs)
	}

	// (d) Metrics, on the bus network, with the token.
	metricsURL := "http://" + s.ip("healer", "bus") + ":8380/metrics"
	if code, _ := get(t, metricsURL, ""); code != http.StatusUnauthorized {
		t.Errorf("metrics without the token: %d", code)
	}
	code, body := get(t, metricsURL, token)
	if v, ok := metric(body, `hmd_restarts_total{container="`+name+`",result="ok"}`); code != 200 || !ok || v != 1 {
		t.Errorf("metrics: %d, restarts of %s = %v (found %v)", code, name, v, ok)
	}

	// (c) The history after the stack restarts, through the listener.
	s.must("restart", "-t", "5")
	out := testkit.Eventually(t, wait, "healer events to show the restart after the stack restarts", func() (string, bool) {
		out, err := dockertest.Docker("exec", s.id("healer"), "/healer", "events", "--nats-url", "nats://127.0.0.1:4222",
			"--nats-user", "reader", "--nats-password", readerPass, "--container", name)
		if err != nil {
			return fmt.Sprintf("%v\n%s", err, out), false
		}
		return out, strings.Contains(out, string(events.RestartSucceeded))
	})
	t.Logf("healer events after the restart:\n%s", out)
}
