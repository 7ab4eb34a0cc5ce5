package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/gotify"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// A heal on the real engine reaches a Slack-format receiver on loopback.
func TestHealIsNotified(t *testing.T) {
	label := "hmd-notify-" + env.RunID
	name := "hmd-notify-" + env.RunID
	srv := testkit.NewSlack(t)
	startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", srv.URL+"/hooks/x",
		"--notify-level", "debug", "--notify-group-wait", "500ms")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".notify_log_lines": "2"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms", "FIXTURE_LOG_LINES": "3"}})
	text, ok := srv.WaitText(wait, name+": restarted")
	if !ok {
		t.Fatalf("no notification of the restart of %s", name)
	}
	if !strings.Contains(text, "health_status: unhealthy") || !strings.Contains(text, "restart 1 in this frame") {
		t.Errorf("notification lacks why or the frame count: %q", text)
	}
	// The last two lines of the container's log before the restart, quoted.
	// (stdout and stderr are merged in the daemon's order, so which two is
	// the daemon's to say.)
	if n := strings.Count(text, "\n    | "); n != 2 || !strings.Contains(text, "run 1 line ") {
		t.Errorf("notification quotes %d log lines, want notify_log_lines=2 of run 1: %q", n, text)
	}
}

// A split notifier on the healer's NATS listener and the healer's own
// notifier share the target's durable consumer: every restart is told once.
func TestSplitAndInProcessNotifiersNeverBothSend(t *testing.T) {
	label := "hmd-notify2-" + env.RunID
	srv := testkit.NewSlack(t)
	hook := srv.URL + "/hooks/shared"
	natsPort := testkit.FreePort(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", hook, "--notify-level", "debug", "--notify-group-wait", "200ms",
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--nats-token", "t0ken")

	// Wrong credentials: a clear error and exit 1, the token not shown.
	bad := exec.Command(notifierBin)
	bad.Env = append(os.Environ(), fmt.Sprintf("HMD_NATS_URL=nats://127.0.0.1:%d", natsPort), "HMD_NATS_TOKEN=wrong-t0ken", "HMD_NOTIFY_URL="+hook)
	out, err := bad.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(strings.ToLower(string(out)), "authorization violation") || strings.Contains(string(out), "wrong-t0ken") {
		t.Errorf("notifier with a wrong token: %v\n%s", err, out)
	}

	stderr := startProcess(t, notifierBin, nil, append(os.Environ(), fmt.Sprintf("HMD_NATS_URL=nats://127.0.0.1:%d", natsPort), "HMD_NATS_TOKEN=t0ken",
		"HMD_NOTIFY_URL="+hook, "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=200ms"))
	// A first consumer starts at new events: heal once it is there.
	testkit.Until(t, wait, "the split notifier's consumer", func() bool { return strings.Contains(stderr.String(), "notifier: delivering") })

	var names []string
	for i := range 5 {
		name := fmt.Sprintf("hmd-notify2-%d-%s", i, env.RunID)
		names = append(names, name)
		sick := map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}
		if i == 4 {
			sick = map[string]string{"FIXTURE_SICK_RUNS": "1"}
		}
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: sick})
	}
	for _, name := range names[:4] {
		h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
		if _, ok := srv.WaitText(wait, name+": restarted"); !ok {
			t.Fatalf("%s's restart was not notified", name)
		}
	}
	// The fifth heals later: once it is told, a second delivery of the
	// first four, which the stream holds before it, would have come too.
	if _, err := dockertest.Docker("exec", names[4], "/fixture", "ctl", "sick"); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.WaitText(wait, names[4]+": restarted"); !ok {
		t.Fatalf("%s's restart was not notified", names[4])
	}
	if log := stderr.String(); !strings.Contains(log, "notifier started") || strings.Contains(log, "level=ERROR") {
		t.Errorf("the split notifier did not run cleanly:\n%s", log)
	}
	all := strings.Join(srv.All(), "\n")
	for _, name := range names {
		if n := strings.Count(all, name+": restarted"); n != 1 {
			t.Errorf("%s's restart was told %d times, want once", name, n)
		}
	}
}

// A container's own notify_url and notify_level labels send its events to
// its own target at its own level, instead of the default target; the
// message carries the failed probe's output.
func TestContainerLabelsPickTheTarget(t *testing.T) {
	label := "hmd-route-" + env.RunID
	defSrv := testkit.NewSlack(t)
	ownSrv := testkit.NewSlack(t)
	startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", defSrv.URL+"/hooks/default",
		"--notify-level", "warning", "--notify-group-wait", "300ms")
	routed := "hmd-route-own-" + env.RunID
	plain := "hmd-route-plain-" + env.RunID
	env.Run(t, dockertest.Spec{Name: routed, Labels: map[string]string{
		label: "true", label + ".notify_url": ownSrv.URL + "/hooks/own", label + ".notify_level": "debug",
	}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	text, ok := ownSrv.WaitText(wait, routed+": restarted")
	if !ok {
		t.Fatalf("%s's restart did not reach its own target", routed)
	}
	if !strings.Contains(text, "last probe said: fixture run 1: sick") {
		t.Errorf("the message lacks the failed probe's output: %q", text)
	}
	// The default target is at warning: it hears of a frame limit, and by
	// then it would have had the routed restart had it taken it.
	env.Run(t, dockertest.Spec{Name: plain, Labels: map[string]string{label: "true", label + ".max_restarts_in_frame": "1", label + ".frame_size": "10m"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "99", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	if _, ok := defSrv.WaitText(wait, plain+": not restarted"); !ok {
		t.Fatalf("the default target was not told of %s's frame limit", plain)
	}
	for _, s := range defSrv.All() {
		if strings.Contains(s, routed) {
			t.Errorf("the default target got the routed container's event: %q", s)
		}
	}
	for _, s := range ownSrv.All() {
		if strings.Contains(s, plain) {
			t.Errorf("the container's own target got another container's event: %q", s)
		}
	}
}

// A heal reaches a real Gotify server through Shoutrrr; a wrong token is a
// refusal, published as notify.failed and not retried.
func TestGotifyReceivesTheHeal(t *testing.T) {
	bin, err := gotify.Build()
	if err != nil {
		t.Fatalf("gotify: %v", err)
	}
	g, err := gotify.Start(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	label := "hmd-gotify-" + env.RunID
	name := "hmd-gotify-" + env.RunID
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-level", "debug", "--notify-group-wait", "300ms",
		"--notify-url", g.ShoutrrrURL(g.AppToken)+","+g.ShoutrrrURL("AwrongTokenXyz1"))
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	m, err := g.WaitFor(wait, func(m gotify.Message) bool { return strings.Contains(m.Message, name+": restarted") })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Message, "last probe said: fixture run 1: sick") {
		t.Errorf("gotify message lacks the probe output: %+v", m)
	}
	failed := h.got.wait(t, wait, "notify.failed for the wrong token", func(e events.Event) bool { return e.Kind() == events.NotifyFailed })
	if !strings.Contains(failed.Data.Error, "401") || strings.Contains(failed.Data.Error, "AwrongTokenXyz1") || strings.Contains(failed.Data.Reason, "AwrongTokenXyz1") {
		t.Errorf("notify.failed should say 401 and hide the token: %+v", failed.Data)
	}
}
