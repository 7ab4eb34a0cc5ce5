package app

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/httpapi"
)

// Bounds of a control request: it is outside input.
const (
	maxPause       = 31 * 24 * time.Hour
	maxReason      = 200
	maxControlled  = 1000
	controlTimeout = 10 * time.Second
)

// containerName is what Docker accepts as a container name or id.
var containerName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

// Control pauses or resumes healing of the named containers (or all), as
// `healer pause` and `healer resume` ask through the HTTP endpoint.
func (a *App) Control(ctx context.Context, action string, r httpapi.ControlRequest) ([]httpapi.ControlResult, error) {
	var until time.Time
	if r.For != "" {
		if action != "pause" {
			return nil, fmt.Errorf("%w: --for goes with pause", httpapi.ErrBadRequest)
		}
		longest := maxPause
		if a.cfg.Retention > 0 {
			// A pause is an event in the history: it must outlive no record.
			longest = min(longest, a.cfg.Retention)
		}
		d, err := config.ParseDuration(r.For)
		if err != nil || d <= 0 || d > longest {
			return nil, fmt.Errorf("%w: --for %q: expected a duration from 1s to %s, such as 30m", httpapi.ErrBadRequest, r.For, longest)
		}
		until = time.Now().Add(d)
	}
	if r.All == (len(r.Names) > 0) {
		return nil, fmt.Errorf("%w: name the containers, or give --all", httpapi.ErrBadRequest)
	}
	if len(r.Names) > maxControlled {
		return nil, fmt.Errorf("%w: %d names, at most %d", httpapi.ErrBadRequest, len(r.Names), maxControlled)
	}
	reason := cleanReason(r.Reason)
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()

	var targets []events.Container
	var out []httpapi.ControlResult
	switch {
	case r.All && action == "resume":
		for _, id := range a.healer.Paused() {
			c, err := a.docker.Inspect(ctx, id)
			if err != nil {
				c = events.Container{ID: id, Name: events.ShortID(id)}
			}
			targets = append(targets, c)
		}
	case r.All:
		list, err := a.docker.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("pause --all: %w", err)
		}
		for _, c := range list {
			if a.selected(c) {
				targets = append(targets, c)
			}
		}
	default:
		for _, name := range r.Names {
			if !containerName.MatchString(name) {
				out = append(out, httpapi.ControlResult{Name: events.SanitizeToken(name), Error: "not a container name or id"})
				continue
			}
			c, err := a.docker.Inspect(ctx, strings.TrimPrefix(name, "/"))
			switch {
			case err != nil:
				out = append(out, httpapi.ControlResult{Name: name, Error: "no such container"})
			case !a.selected(c):
				out = append(out, httpapi.ControlResult{Name: c.Name, ID: events.ShortID(c.ID), Error: "not selected by this healer (container_label " + a.cfg.ContainerLabel + ", namespace " + a.cfg.Namespace + ")"})
			default:
				targets = append(targets, c)
			}
		}
	}
	for _, c := range targets {
		res := httpapi.ControlResult{Name: c.Name, ID: events.ShortID(c.ID)}
		if action == "pause" {
			a.healer.Pause(c, until, reason)
			if !until.IsZero() {
				u := until.UTC()
				res.Until = &u
			}
		} else if _, ok := a.healer.Resume(c, reason); !ok {
			res.Error = "not paused"
		}
		out = append(out, res)
	}
	return out, nil
}

func (a *App) selected(c events.Container) bool {
	return config.Selected(c.Labels, a.cfg.ContainerLabel) && config.InNamespace(c.Name, a.cfg.Namespace)
}

// cleanReason keeps a person's reason to one bounded line of printable
// text: it lands in events, logs, messages and the page.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxReason {
		s = string(r[:maxReason]) + "…"
	}
	return s
}
