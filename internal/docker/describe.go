package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// Described is a container as `healer check` explains it: the healer's
// view of it, and what the daemon says of its state, health check and log.
type Described struct {
	hmd.Container
	// State is the daemon's: created, running, paused, restarting, exited
	// or dead.
	State string
	// Healthcheck says the container has a HEALTHCHECK (not NONE), whether
	// or not it runs now.
	Healthcheck bool
	LogDriver   string
}

// Describe inspects every container, running or not. A container removed
// between the list and its inspect is left out.
func (c *Client) Describe(ctx context.Context) ([]Described, error) {
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Described, 0, len(res.Items))
	for _, s := range res.Items {
		r, err := c.api.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			if strings.Contains(strings.ToLower(err.Error()), "no such container") {
				continue
			}
			return nil, fmt.Errorf("inspect %s: %w", hmd.ShortID(s.ID), err)
		}
		d := Described{Container: fromInspect(r.Container)}
		if st := r.Container.State; st != nil {
			d.State = string(st.Status)
		}
		if cfg := r.Container.Config; cfg != nil && cfg.Healthcheck != nil {
			t := cfg.Healthcheck.Test
			d.Healthcheck = len(t) > 0 && t[0] != "NONE"
		}
		if hc := r.Container.HostConfig; hc != nil {
			d.LogDriver = hc.LogConfig.Type
		}
		out = append(out, d)
	}
	return out, nil
}
