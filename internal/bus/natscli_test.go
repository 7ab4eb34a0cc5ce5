package bus

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// natsCLI finds the nats CLI, which .ci/run builds into the user cache
// dir. Missing in CI is a failure; on a laptop it skips with how to get it.
func natsCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nats")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("FAIL: the nats CLI is not on PATH; .ci/run builds it (go install github.com/nats-io/natscli/nats@latest)")
	}
	t.Skip("the nats CLI is not on PATH: go install github.com/nats-io/natscli/nats@latest")
	return ""
}

// The same attacks as TestReaderAttacksAreRefused, with the nats CLI an
// outside user would reach for.
func TestReaderAttacksWithNatsCLI(t *testing.T) {
	cli := natsCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, addr := openWithReader(t, ctx)
	kv, err := OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "notify-x", []byte("https://chat.example/hooks/s3cr3t")); err != nil {
		t.Fatal(err)
	}
	durable, err := b.JetStream().CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: "notifier", FilterSubject: "hmd.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.JetStream().Publish(ctx, "hmd.h.web.outcome.restart_succeeded", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	nats := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, cli, append([]string{"--server", "nats://" + addr, "--user", "reader", "--password", "rp", "--timeout", "2s", "--no-context"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// What the reader may do.
	// The reader's mirror follows within moments.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := nats("stream", "get", EventsStream, "1")
		if err == nil && strings.Contains(out, `{"n":1}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats stream get as the reader: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// README's example: the history through the CLI's own consumer.
	if out, err := nats("sub", "--stream", EventsStream, "--all", "--count", "1", "--raw"); err != nil || !strings.Contains(out, `{"n":1}`) {
		t.Errorf("nats sub --stream as the reader: %v\n%s", err, out)
	}
	// What it may not.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"read a notify route", []string{"kv", "get", RoutesBucket, "notify-x"}},
		{"purge the stream", []string{"stream", "purge", EventsStream, "-f"}},
		{"delete the stream", []string{"stream", "rm", EventsStream, "-f"}},
		{"delete the notifier's durable", []string{"consumer", "rm", EventsStream, "notifier", "-f"}},
		{"pull the notifier's messages", []string{"consumer", "next", EventsStream, "notifier", "--count", "1"}},
		{"make a stream", []string{"stream", "add", "MINE", "--subjects", "mine.>", "--defaults"}},
		{"request a route through the API", []string{"request", "$JS.API.DIRECT.GET.KV_" + RoutesBucket + ".$KV." + RoutesBucket + ".notify-x", ""}},
	} {
		out, err := nats(c.args...)
		// nats request reports a refusal and exits 0.
		refused := err != nil || strings.Contains(out, "Permissions Violation")
		if !refused || strings.Contains(out, "s3cr3t") {
			t.Errorf("%s: the nats CLI was not refused (%v):\n%s", c.name, err, out)
		}
	}
	// A publish is refused by the server; the CLI may still exit 0, so the
	// stream is the judge.
	out, _ := nats("pub", "hmd.h.web.decision.restart_requested", "{}")
	info, err := b.JetStream().Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("the reader's nats pub reached the stream (%d events):\n%s", n, out)
	}
	ci, err := durable.Info(ctx)
	if err != nil || ci.NumPending != 1 || ci.Config.FilterSubject != "hmd.>" {
		t.Errorf("the notifier's durable changed: %v %+v", err, ci)
	}
	if _, err := kv.Get(ctx, "notify-x"); err != nil {
		t.Errorf("the route is gone: %v", err)
	}
}
