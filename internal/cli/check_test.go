package cli

import (
	"reflect"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/events"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	cfg := config.Config{ContainerLabel: "x", Namespace: "app-", Policy: config.Policy{FrameSize: time.Minute, MaxRestartsInFrame: 3, HealExited: true, NotifyLogLines: 10}}
	over := config.NewOverrides(cfg.ContainerLabel)
	ct := func(name, state string, hc bool, labels map[string]string) docker.Described {
		return docker.Described{Container: events.Container{ID: "0123456789abcdef", Name: name, Labels: labels}, State: state, Healthcheck: hc}
	}
	policy := func(change func(*config.Policy)) map[string]string {
		p := cfg.Policy
		if change != nil {
			change(&p)
		}
		return p.Values()
	}
	for _, tc := range []struct {
		name string
		in   docker.Described
		want CheckContainer
	}{
		{"no label", ct("app-a", "running", true, nil),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Healthcheck: true, Why: "no label x=true"}},
		{"false", ct("app-a", "running", true, map[string]string{"x": "false"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Healthcheck: true, Why: "x=false"}},
		{"outside the namespace", ct("other", "running", true, map[string]string{"x": "true"}),
			CheckContainer{Name: "other", ID: "0123456789ab", State: "running", Healthcheck: true, Why: `name outside namespace "app-"`}},
		{"selected with a label", ct("app-a", "running", true, map[string]string{"x": "true", "x.max_restarts_in_frame": "1"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Healthcheck: true, Selected: true, Why: "x=true",
				Labels: []config.AppliedLabel{{Label: "x.max_restarts_in_frame", Key: "max_restarts_in_frame", Value: "1"}},
				Policy: policy(func(p *config.Policy) { p.MaxRestartsInFrame = 1 })}},
		{"swarm task", ct("app-a", "running", true, map[string]string{"x": "true", "com.docker.swarm.task.id": "t1"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Healthcheck: true, Why: "a Swarm task (com.docker.swarm.task.id): Swarm replaces it", Policy: policy(nil)}},
		{"one-off", ct("app-a", "running", true, map[string]string{"x": "true", "com.docker.compose.oneoff": "True"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Healthcheck: true, Why: "a compose one-off (com.docker.compose.oneoff=True): not started again", Policy: policy(nil)}},
		{"paused", ct("app-a", "paused", true, map[string]string{"x": "true"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "paused", Healthcheck: true, Why: "paused: left alone until unpaused", Policy: policy(nil)}},
		{"no healthcheck, bad label", ct("app-a", "running", false, map[string]string{"x": "true", "x.frame_size": "\x1b[2Jsoon"}),
			CheckContainer{Name: "app-a", ID: "0123456789ab", State: "running", Selected: true, Why: "x=true",
				Labels:   []config.AppliedLabel{{Label: "x.frame_size", Key: "frame_size", Value: "soon", Error: "expected a duration from 1s to 744h0m0s (such as 10s, or 10 for seconds)"}},
				Policy:   policy(nil),
				Warnings: []string{`invalid label x.frame_size="soon": expected a duration from 1s to 744h0m0s (such as 10s, or 10 for seconds); the default applies`, "no HEALTHCHECK: healed only when it crashes"}}},
	} {
		if got := explain(tc.in, cfg, over); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestParseCheckArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want CheckOptions
		rest []string
	}{
		{"all", nil, CheckOptions{}, nil},
		{"name first", []string{"web", "-o", "json"}, CheckOptions{Container: "web", JSON: true}, nil},
		{"name after settings", []string{"--container-label", "x", "/web", "-o=table"}, CheckOptions{Container: "web"}, []string{"--container-label", "x"}},
		{"setting with =", []string{"--data-dir=/d", "web"}, CheckOptions{Container: "web"}, []string{"--data-dir=/d"}},
	} {
		got, rest, err := ParseCheckArgs(tc.args)
		if err != nil || got != tc.want || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("%s: %+v %q %v; want %+v %q", tc.name, got, rest, err, tc.want, tc.rest)
		}
	}
	if _, _, err := ParseCheckArgs([]string{"-o", "yaml"}); err == nil {
		t.Error("-o yaml was accepted")
	}
}
