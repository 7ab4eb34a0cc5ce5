package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healmydocker/healmydocker/internal/config"
	hmdevents "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// The status is the healer's own view: listed once at connect, then kept
// current by the events, with no Docker call per request; a destroyed
// container leaves it and takes its metric series along.
func TestStatusFromOwnView(t *testing.T) {
	fake, err := fakedocker.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	for i := range 3 {
		fake.Add(fakedocker.Container{ID: fmt.Sprintf("c%011d", i), Name: fmt.Sprintf("svc-%d", i), Running: true, Health: "healthy", Labels: map[string]string{"healme": "true"}})
	}
	fake.Add(fakedocker.Container{ID: "other0000000", Name: "other", Running: true, Labels: map[string]string{"unrelated": "x"}})
	t.Setenv("DOCKER_HOST", fake.Host())
	cfg, err := config.Load(nil, []string{"HMD_DATA_DIR=" + t.TempDir(), "HMD_HOST_NAME=viewhost", "HMD_HTTP_PORT=0",
		"HMD_DOCKER_PING_INTERVAL=1h", "HMD_DOCKER_RECONCILE_INTERVAL=0"}, io.Discard, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	status := func() Status {
		t.Helper()
		raw, err := a.Status(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		if err := json.Unmarshal(raw.(json.RawMessage), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// waitFor polls the status, which costs the daemon nothing, until ok.
	waitFor := func(what string, ok func(Status) bool) Status {
		t.Helper()
		return testkit.Eventually(t, 20*time.Second, what, func() (Status, bool) {
			st := status()
			return st, ok(st)
		})
	}
	byName := func(st Status) map[string]string {
		m := map[string]string{}
		for _, c := range st.Containers {
			m[c.Name] = c.State + "/" + c.Health
		}
		return m
	}
	st := waitFor("the listing at connect", func(st Status) bool { return st.Ready && len(st.Containers) == 3 })
	if got := byName(st); got["svc-0"] != "running/healthy" || got["other"] != "" {
		t.Fatalf("listed containers: %v", got)
	}

	before := fake.RequestsButPing()
	for range 200 {
		status()
	}
	if after := fake.RequestsButPing(); after != before {
		t.Errorf("200 status requests made %d Docker calls (%v)", after-before, fake.Requests())
	}

	// Events keep it current: a container turns unhealthy, is restarted by
	// the healer and is healthy again; another dies; a third is removed.
	fake.Emit("c00000000000", events.ActionHealthStatusUnhealthy, nil)
	waitFor("the restart in the view", func(st Status) bool {
		for _, c := range st.Containers {
			if c.Name == "svc-0" && len(c.Restarts) == 1 && c.Restarts[0].OK {
				return true
			}
		}
		return false
	})
	fake.Emit("c00000000000", events.ActionHealthStatusHealthy, nil)
	fake.Emit("c00000000001", events.ActionDie, map[string]string{"exitCode": "0"})
	waitFor("health and death from events", func(st Status) bool {
		got := byName(st)
		return got["svc-0"] == "running/healthy" && strings.HasPrefix(got["svc-1"], "exited/")
	})
	if restartSeries(t, a) != 1 {
		t.Fatalf("want one hmd_restarts_total series after the restart, got %d", restartSeries(t, a))
	}
	fake.Remove("c00000000000")
	waitFor("the destroyed container gone", func(st Status) bool {
		_, there := byName(st)["svc-0"]
		return !there && len(st.Containers) == 2
	})
	if n := restartSeries(t, a); n != 0 {
		t.Errorf("a destroyed container's restart series stayed: %d", n)
	}
	// Only the listing at connect reached the daemon beyond the restart's
	// and the removal's own calls (each looks for dependents): no status
	// request did.
	reqs := fake.Requests()
	if n := reqs["GET /containers/json"]; n < 1 || n > 4 {
		t.Errorf("container lists: %d (%v)", n, reqs)
	}
}

// restartSeries counts the series of hmd_restarts_total.
func restartSeries(t *testing.T, a *App) int {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hmd_restarts_total" {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// A destroyed container takes along the notification series of the notify
// target from its labels; other targets' series stay.
func TestForgetSeriesOfLabelTarget(t *testing.T) {
	t.Parallel()
	a := &App{cfg: config.Config{ContainerLabel: "healme"}, overrides: config.NewOverrides("healme"),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"container", "result"}),
		sent:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s"}, []string{"target", "result"})}
	url := "https://hooks.example.com/services/T/B/x"
	mine := hmdevents.NotifyTargetID(url)
	a.sent.WithLabelValues(mine, "ok").Inc()
	a.sent.WithLabelValues("slack", "ok").Inc()
	a.restarts.WithLabelValues("web", "ok").Inc()
	a.forgetSeries(hmdevents.Observed{Kind: hmdevents.DockerDestroy, Name: "web", Labels: map[string]string{"healme": "true", "healme.notify_url": url}})
	series := func(c prometheus.Collector) []string {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() != "result" {
						out = append(out, l.GetValue())
					}
				}
			}
		}
		return out
	}
	if got := series(a.sent); len(got) != 1 || got[0] != "slack" {
		t.Errorf("notification series left: %v, want the configured target's alone", got)
	}
	if got := series(a.restarts); len(got) != 0 {
		t.Errorf("restart series left: %v", got)
	}
}
