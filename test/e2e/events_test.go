package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// followEvents runs `healer events --follow -o json` with args and records
// the events it prints.
func followEvents(t *testing.T, environ []string, args ...string) *waitlog.Log[events.Event] {
	t.Helper()
	cmd := exec.Command(healerBin, append([]string{"events", "--follow", "-o", "json"}, args...)...)
	cmd.Env = environ
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr := &waitlog.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := waitlog.New[events.Event]()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e events.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("healer events -o json printed a line that is not an event: %q", sc.Text())
				continue
			}
			got.Add(e)
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("healer events stderr:\n%s", stderr.String())
		}
	})
	return got
}

// `healer events` follows a running healer through its listener with the
// reader's credentials, and reads a stopped healer's data dir.
func TestEventsCommand(t *testing.T) {
	label := "hmd-events-" + env.RunID
	name := "hmd-events-" + env.RunID
	dir := t.TempDir()
	natsPort := testkit.FreePort(t)
	h := startHealer(t, dir, "--container-label", label, "--retention", "2h", "--events-max-bytes", "8MB", "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort),
		"--nats-user", "healer", "--nats-password", "hp", "--nats-reader-user", "reader", "--nats-reader-password", "rp")
	reader := []string{fmt.Sprintf("HMD_NATS_URL=nats://127.0.0.1:%d", natsPort), "HMD_NATS_USER=reader", "HMD_NATS_PASSWORD=rp", "PATH=" + os.Getenv("PATH")}
	live := followEvents(t, reader, "--container", name)

	// While the healer runs, its data dir is locked: a clear error.
	out, err := exec.Command(healerBin, "events", "--data-dir", dir).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "--nats-url") {
		t.Errorf("events on a running healer's data dir: %v\n%s", err, out)
	}

	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	h.got.wait(t, wait, "restart", kindOf(events.RestartSucceeded, name))
	for _, k := range []events.Kind{events.DockerUnhealthy, events.RestartRequested, events.RestartSucceeded} {
		if _, ok := live.WaitNth(wait, 1, func(e events.Event) bool { return e.Kind() == k && e.Subject == name }); !ok {
			t.Errorf("healer events --follow did not show %s", k)
		}
	}
	if n := len(live.All(func(e events.Event) bool { return e.Subject != name })); n > 0 {
		t.Errorf("--container %s also printed %d events of others", name, n)
	}
	h.stop()

	// Stopped: the history from the data dir, as a table.
	table, err := exec.Command(healerBin, "events", "--data-dir", dir, "--since", "1h", "--container", name).CombinedOutput()
	if err != nil {
		t.Fatalf("healer events on a stopped healer's dir: %v\n%s", err, table)
	}
	lines := nonEmptyLines(string(table))
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("healer events printed no table:\n%s", table)
	}
	var restarted bool
	for _, l := range lines[1:] {
		if !strings.Contains(l, name) {
			t.Errorf("a line of another container: %q", l)
		}
		restarted = restarted || strings.Contains(l, string(events.RestartSucceeded)) && strings.Contains(l, "reason=health_status: unhealthy")
	}
	if !restarted {
		t.Errorf("the table lacks the restart:\n%s", table)
	}
	// Reading the store left the healer's retention and bound as they were.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := b.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != 2*time.Hour || c.MaxBytes != 8<<20 {
		t.Errorf("after healer events --data-dir the stream keeps events for %s and %d bytes; the healer set 2h and 8 MiB", c.MaxAge, c.MaxBytes)
	}
}
