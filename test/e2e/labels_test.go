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
)

// A notify_url label whose host decodes to invalid UTF-8 once went into a
// metric label and panicked the in-process notifier, and, stored as a
// route, again on every start. It is refused at validation: a config.error
// naming the container and the label, no route stored, and the container
// is healed and told to the default target.
func TestLabelHostileNotifyURLIsRefused(t *testing.T) {
	label := "hmd-hostile-" + env.RunID
	name := "hmd-hostile-" + env.RunID
	srv, texts := slackReceiver(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", srv.URL+"/hooks/default",
		"--notify-level", "debug", "--notify-group-wait", "200ms")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true", label + ".notify_url": "https://%ff.x/"},
		Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}})
	h.got.wait(t, wait, "config.error for the notify_url label", func(e events.Event) bool {
		return e.Kind() == events.ConfigError && e.Subject == name && e.Data.Label == label+".notify_url" && e.Data.Value == "[redacted]"
	})
	h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
	if _, ok := texts.WaitNth(wait, 1, func(s string) bool { return strings.Contains(s, name+": restarted") }); !ok {
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
