package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// A notify_url label whose host decodes to invalid UTF-8 once went into a
// metric label and panicked the in-process notifier, and, stored as a
// route, again on every start. It is refused at validation: a config.error
// naming the container and the label, no route stored, and the container
// is healed and told to the default target.
func TestLabelHostileNotifyURLIsRefused(t *testing.T) {
	label := "hmd-hostile-" + env.RunID
	name := "hmd-hostile-" + env.RunID
	srv := testkit.NewSlack(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", srv.URL+"/hooks/default",
		"--notify-level", "debug", "--notify-group-wait", "200ms")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".notify_url": "https://%ff.x/"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	h.got.wait(t, wait, "config.error for the notify_url label", func(e events.Event) bool {
		return e.Kind() == events.ConfigError && e.Subject == name && e.Data.Label == label+".notify_url" && e.Data.Value == "[redacted]"
	})
	h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
	if _, ok := srv.WaitText(wait, name+": restarted"); !ok {
		t.Fatalf("the default target was not told of %s's restart", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := h.Bus().JetStream().KeyValue(ctx, bus.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && err != jetstream.ErrNoKeysFound {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("routes stored for a refused URL: %v", keys)
	}
	if h.got.count(func(e events.Event) bool { return e.Kind() == events.HealerPanic }) != 0 {
		t.Errorf("a part of the healer panicked")
	}
}

// hostileText tries what Slack and Mattermost act on: mentions, a
// disguised link, an image, a markdown link, and a forged line.
const hostileText = "<!channel> @here @all @channel <https://evil.example|docs> ![x](https://evil.example/i.png) [ok](https://evil.example)\n[forged] web: restarted"

// slackUnsafe names what in text a Slack or Mattermost client would act on.
func slackUnsafe(text string) string {
	for _, bad := range []string{"<!", "<http", "@channel", "@here", "@all", "](", "![", "\n[forged]"} {
		if strings.Contains(text, bad) {
			return bad
		}
	}
	return ""
}

// A container whose label value and health-probe output carry hostile
// text: the messages at a real Slack-format receiver carry it escaped.
func TestLabelAndProbeTextIsEscapedForSlack(t *testing.T) {
	label := "hmd-escape-" + env.RunID
	name := "hmd-escape-" + env.RunID
	srv := testkit.NewSlack(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", srv.URL+"/hooks/x",
		"--notify-level", "debug", "--notify-group-wait", "200ms")
	// Sick on every run, so the last failed probe is a sick one whichever
	// restart's message carries it.
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".max_restarts_in_frame": hostileText},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "3", "FIXTURE_UNHEALTHY_AFTER": "200ms", "FIXTURE_SICK_TEXT": " " + hostileText}})
	h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
	escaped := func(s string) bool {
		return strings.Contains(s, "&lt;!channel&gt;") && strings.Contains(s, "&lt;https://evil.example|docs&gt;")
	}
	if _, ok := srv.Texts.WaitNth(wait, 1, func(s string) bool { return strings.Contains(s, "last probe said: fixture run") && escaped(s) }); !ok {
		t.Fatalf("no message of %s's restart with its probe output, escaped", name)
	}
	if _, ok := srv.Texts.WaitNth(wait, 1, func(s string) bool {
		return strings.Contains(s, "bad label "+label+".max_restarts_in_frame") && escaped(s)
	}); !ok {
		t.Fatalf("no message of %s's bad label with its value, escaped", name)
	}
	for _, text := range srv.All() {
		if b := slackUnsafe(text); b != "" {
			t.Errorf("%q reaches Slack unescaped in %q", b, text)
		}
	}
}

// Docker copies labels over event attributes: a container labelled
// exitCode=0 that exits with 3 is treated as exit 3 (and healed), not as a
// clean exit left alone.
func TestLabelExitCodeDoesNotFakeTheExit(t *testing.T) {
	label := "hmd-fakeexit-" + env.RunID
	name := "hmd-fakeexit-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", "exitCode": "0", "signal": "SIGTERM"}, Args: []string{"--health-retries", "3"},
		Env: map[string]string{"FIXTURE_EXIT_AFTER": "500ms", "FIXTURE_EXIT_CODE": "3", "FIXTURE_SICK_RUNS": "1"}})
	die := dockerEvents.Wait(t, wait, name+" die", dockertest.Is(name, "die"))
	if die.Actor.Attributes["exitCode"] != "0" {
		t.Fatalf("the daemon reported exitCode %q; the label no longer overrides it, so this test proves nothing", die.Actor.Attributes["exitCode"])
	}
	obs := h.got.wait(t, wait, name+" die", kindOf(events.DockerDie, name))
	if obs.Data.ExitCode == nil || *obs.Data.ExitCode != 3 {
		t.Errorf("docker.die published with exit code %v, want 3", obs.Data.ExitCode)
	}
	h.got.wait(t, wait, name+" restart succeeded", kindOf(events.RestartSucceeded, name))
}

// Other healers' labels do not select under a custom label, and a
// selection label that is not a boolean is a config.error naming it.
func TestLabelSelectionIsWhatTheOperatorConfigured(t *testing.T) {
	label := "hmd-select-" + env.RunID
	alias, typo := "hmd-select-alias-"+env.RunID, "hmd-select-typo-"+env.RunID
	dockerEvents := env.WatchEvents(t)
	h := startHealer(t, t.TempDir(), append([]string{"--container-label", label}, fast...)...)
	sick := map[string]string{"FIXTURE_UNHEALTHY_AFTER": "300ms", "FIXTURE_SICK_RUNS": "1"}
	env.Run(t, dockertest.Spec{Name: alias, Labels: map[string]string{"autoheal": "true", label + ".probe": "x"}, Env: sick})
	env.Run(t, dockertest.Spec{Name: typo, Labels: map[string]string{label: "ture"}, Env: sick})
	h.got.wait(t, wait, "config.error for "+typo, func(e events.Event) bool {
		return e.Kind() == events.ConfigError && e.Subject == typo && e.Data.Label == label && e.Data.Value == "ture" && strings.Contains(e.Data.Expected, "yes/no")
	})
	// Both turn unhealthy; a third one, selected, turns unhealthy after
	// them and is healed, so the healer had the others' events by then.
	for _, n := range []string{alias, typo} {
		dockerEvents.Wait(t, wait, n+" unhealthy", dockertest.Is(n, "health_status: unhealthy"))
	}
	yes := "hmd-select-yes-" + env.RunID
	env.Run(t, dockertest.Spec{Name: yes, Labels: map[string]string{label: "YES"}, Env: sick})
	h.got.wait(t, wait, yes+" restarted", kindOf(events.RestartSucceeded, yes))
	for _, n := range []string{alias, typo} {
		if c := h.got.count(func(e events.Event) bool { return e.Subject == n && e.Kind() == events.RestartRequested }); c != 0 {
			t.Errorf("%s was restarted %d times; it is not selected", n, c)
		}
	}
}

// A container's own target reads only the subjects of the containers that
// name it, not every event.
func TestLabelTargetReadsOnlyItsContainers(t *testing.T) {
	label := "hmd-narrow-" + env.RunID
	name := "hmd-narrow-" + env.RunID
	own := testkit.NewSlack(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-level", "debug", "--notify-group-wait", "200ms")
	url := own.URL + "/hooks/own"
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".notify_url": url},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	if _, ok := own.WaitText(wait, name+": restarted"); !ok {
		t.Fatalf("%s's restart did not reach its own target", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.Bus().JetStream().Consumer(ctx, bus.EventsStream, events.NotifyTargetID(url))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "hmd.*." + events.SanitizeToken(name) + ".>"
	if info.Config.FilterSubject != "" || len(info.Config.FilterSubjects) != 1 || info.Config.FilterSubjects[0] != want {
		t.Errorf("the target's consumer reads %q %q, want only %q", info.Config.FilterSubject, info.Config.FilterSubjects, want)
	}
}
