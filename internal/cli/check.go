package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
)

// CheckOptions are the flags of `healer check`.
type CheckOptions struct {
	// Container explains one container in full.
	Container string
	JSON      bool
}

// ParseCheckArgs takes check's own arguments (NAME, -o) out of args and
// returns the rest, which are settings.
func ParseCheckArgs(args []string) (CheckOptions, []string, error) {
	var o CheckOptions
	fs := pflag.NewFlagSet("healer check", pflag.ContinueOnError)
	outputVar(fs, &o.JSON)
	words, err := parseOwn(fs, args)
	if err != nil {
		return o, nil, err
	}
	// The settings are config's, so which of them take a value is not known
	// here: a bare word right after a flag without "=" is that flag's value,
	// and the first other one is the container.
	var rest []string
	for i, a := range words {
		if o.Container == "" && !strings.HasPrefix(a, "-") && (i == 0 || !strings.HasPrefix(words[i-1], "--") || strings.Contains(words[i-1], "=")) {
			o.Container = strings.TrimPrefix(a, "/")
			continue
		}
		rest = append(rest, a)
	}
	return o, rest, nil
}

// CheckReport is what `healer check -o json` prints.
type CheckReport struct {
	Config     CheckConfig       `json:"config"`
	Docker     CheckDocker       `json:"docker"`
	DataDir    CheckDataDir      `json:"data_dir"`
	Containers []CheckContainer  `json:"containers"`
	History    *CheckHistory     `json:"history,omitempty"`
	Problems   []string          `json:"problems,omitempty"`
	Defaults   map[string]string `json:"default_policy"`
}

// CheckConfig sums up the settings that decide which containers are healed.
type CheckConfig struct {
	OK             bool     `json:"ok"`
	ContainerLabel string   `json:"container_label"`
	Namespace      string   `json:"namespace,omitempty"`
	NotifyTargets  int      `json:"notify_targets"`
	Warnings       []string `json:"warnings,omitempty"`
}

// CheckDocker is the daemon the healer would talk to.
type CheckDocker struct {
	Host       string `json:"host"`
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	Error      string `json:"error,omitempty"`
}

// CheckDataDir is the state of the event store's directory.
type CheckDataDir struct {
	Path     string `json:"path"`
	Exists   bool   `json:"exists"`
	Writable bool   `json:"writable"`
	// Locked: a running healer holds it (PID from its lock file).
	Locked bool   `json:"locked"`
	PID    string `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
}

// CheckContainer explains one container.
type CheckContainer struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Image    string `json:"image"`
	State    string `json:"state"`
	Selected bool   `json:"selected"`
	// Why says what selects it, or what leaves it alone.
	Why         string `json:"why"`
	Healthcheck bool   `json:"healthcheck"`
	Health      string `json:"health,omitempty"`
	// Labels are the override labels that changed its policy (and bad ones).
	Labels   []config.AppliedLabel `json:"labels,omitempty"`
	Policy   map[string]string     `json:"policy,omitempty"`
	Warnings []string              `json:"warnings,omitempty"`
}

// leftAloneWhy says in check's words why the healer leaves a watched
// container alone: heal.Select's reason, with the label to look for.
func leftAloneWhy(reason string) string {
	switch reason {
	case heal.ReasonSwarm:
		return "a Swarm task (com.docker.swarm.task.id): Swarm replaces it"
	case heal.ReasonOneOff:
		return "a compose one-off (com.docker.compose.oneoff=True): not started again"
	case heal.ReasonPaused:
		return "paused: left alone until unpaused"
	}
	return reason
}

// explain decides what check says of one container. Pure: which
// containers are healed is heal.Select's answer, the healer's own rules;
// config.SelectedBy names the label that selects it.
func explain(d docker.Described, cfg config.Config, over *config.Overrides) CheckContainer {
	c := CheckContainer{Name: d.Name, ID: events.ShortID(d.ID), Image: d.Image, State: d.State,
		Healthcheck: d.Healthcheck, Health: d.Health}
	labelled, why := config.SelectedBy(d.Labels, cfg.ContainerLabel)
	s := heal.Select(d.Labels, d.Name, d.State == "paused", cfg.ContainerLabel, cfg.Namespace)
	if labelled && !s.Watched {
		labelled, why = false, fmt.Sprintf("name outside namespace %q", cfg.Namespace)
	}
	sel := s.Watched && s.LeftAlone == ""
	if s.LeftAlone != "" {
		why = leftAloneWhy(s.LeftAlone)
	}
	c.Selected, c.Why = sel, why
	if !labelled {
		return c
	}
	p, _ := over.Policy(cfg.Policy, d.Labels)
	c.Policy = p.Values()
	for _, a := range over.Applied(d.Labels) {
		a.Value = oneLine(a.Value)
		c.Labels = append(c.Labels, a)
		if a.Error != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("invalid label %s=%q: %s; the default applies", a.Label, a.Value, a.Error))
		}
	}
	if sel && !d.Healthcheck {
		c.Warnings = append(c.Warnings, "no HEALTHCHECK: healed only when it crashes"+map[bool]string{true: "", false: " (and heal_exited is off: never)"}[p.HealExited])
	}
	return c
}

// Check prints the report: configuration, Docker, data dir, and every
// container (or one, with its history). It returns an error when Docker
// cannot be reached or the data dir cannot be used.
func Check(ctx context.Context, o CheckOptions, cfg config.Config, warnings []string, stdout io.Writer, log *slog.Logger) error {
	r := CheckReport{
		Config: CheckConfig{OK: true, ContainerLabel: cfg.ContainerLabel, Namespace: cfg.Namespace,
			NotifyTargets: len(strings.Fields(strings.NewReplacer(",", " ").Replace(cfg.NotifyURL.Reveal()))), Warnings: warnings},
		DataDir:  checkDataDir(cfg.DataDir),
		Defaults: cfg.Policy.Values(),
	}
	if r.DataDir.Error != "" {
		r.Problems = append(r.Problems, "data dir: "+r.DataDir.Error)
	}
	// The one container's effective policy, for when it would next be
	// restarted.
	var policy *config.Policy
	dc, err := docker.NewFromEnv()
	if err != nil {
		r.Docker.Error = err.Error()
	} else {
		defer dc.Close()
		r.Docker.Host = dc.Host()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		info, err := dc.Connect(cctx)
		if err == nil {
			r.Docker.Name, r.Docker.Version, r.Docker.APIVersion = info.Name, info.Version, info.APIVersion
			var ds []docker.Described
			ds, err = dc.Describe(cctx)
			over := config.NewOverrides(cfg.ContainerLabel)
			for _, d := range ds {
				if o.Container != "" && d.Name != o.Container && !strings.HasPrefix(d.ID, o.Container) {
					continue
				}
				r.Containers = append(r.Containers, explain(d, cfg, over))
				if o.Container != "" {
					p, _ := over.Policy(cfg.Policy, d.Labels)
					policy = &p
				}
			}
		}
		cancel()
		if err != nil {
			r.Docker.Error = err.Error()
		}
	}
	if r.Docker.Error != "" {
		r.Problems = append(r.Problems, "docker: "+r.Docker.Error)
	}
	sort.Slice(r.Containers, func(i, j int) bool { return r.Containers[i].Name < r.Containers[j].Name })
	if o.Container != "" {
		if len(r.Containers) == 0 && r.Docker.Error == "" {
			r.Problems = append(r.Problems, fmt.Sprintf("no container named %q", o.Container))
		}
		name := o.Container
		if len(r.Containers) == 1 {
			name = r.Containers[0].Name
		}
		h := readHistory(ctx, cfg, r.DataDir, name, log)
		if h.State != nil && policy != nil {
			h.Next = NextRestart(*h.State, *policy, time.Now())
		}
		r.History = &h
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printCheck(stdout, r, o.Container != "")
	}
	if len(r.Problems) > 0 {
		return errors.New(strings.Join(r.Problems, "; "))
	}
	return nil
}
