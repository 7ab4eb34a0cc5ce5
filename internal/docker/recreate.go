package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// ErrRecreate is a recreate that failed; the old container is left as it
// was unless the error says otherwise.
var ErrRecreate = errors.New("recreate")

// Recreate replaces container id by a copy whose network is
// container:<parentID>: the same name, image, command, entrypoint,
// environment, labels, mounts, restart policy, resources, health check and
// stop signal and timeout. The copy is created under a temporary name and
// started if start; only then is the old one renamed away, the copy given
// its name and the old one removed, so that on any failure the old
// container is left as it was. Errors name the API endpoint that failed, so
// a socket proxy's refusal can be told apart.
// created is told the copy's id before it starts, so its events find the
// history it continues.
func (c *Client) Recreate(ctx context.Context, id, parentID string, start bool, created func(newID string)) (string, error) {
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("%w %s: GET /containers/%s/json: %w", ErrRecreate, hmd.ShortID(id), hmd.ShortID(id), err)
	}
	old := res.Container
	if old.Config == nil || old.HostConfig == nil {
		return "", fmt.Errorf("%w %s: the daemon's inspect has no config", ErrRecreate, hmd.ShortID(id))
	}
	name := strings.TrimPrefix(old.Name, "/")
	cfg, hc := copyConfig(old, parentID)
	tmp := name + "-hmd-new"
	res2, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: tmp})
	if err != nil {
		return "", fmt.Errorf("%w %s: POST /containers/create: %w", ErrRecreate, name, err)
	}
	newID := res2.ID
	created(newID)
	undo := func(what string, err error) (string, error) {
		// The copy goes; the old one was not touched.
		if _, rerr := c.api.ContainerRemove(context.WithoutCancel(ctx), newID, client.ContainerRemoveOptions{Force: true}); rerr != nil {
			return "", fmt.Errorf("%w %s: %s: %w (and removing the copy %s: %w)", ErrRecreate, name, what, err, tmp, rerr)
		}
		return "", fmt.Errorf("%w %s: %s: %w", ErrRecreate, name, what, err)
	}
	if start {
		if _, err := c.api.ContainerStart(ctx, newID, client.ContainerStartOptions{}); err != nil {
			return undo("POST /containers/{id}/start", err)
		}
	}
	aside := hmd.ShortID(id) + "_" + name + "-hmd-old"
	if _, err := c.api.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: aside}); err != nil {
		return undo("POST /containers/{id}/rename", err)
	}
	if _, err := c.api.ContainerRename(ctx, newID, client.ContainerRenameOptions{NewName: name}); err != nil {
		_, _ = c.api.ContainerRename(context.WithoutCancel(ctx), id, client.ContainerRenameOptions{NewName: name})
		return undo("POST /containers/{id}/rename", err)
	}
	// Its volumes stay: the copy mounts them.
	if _, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		return newID, fmt.Errorf("recreated %s as %s, but the old container stays as %s: DELETE /containers/{id}: %w", name, hmd.ShortID(newID), aside, err)
	}
	return newID, nil
}

// copyConfig is the create request for a copy of old on parentID's
// network. The options that conflict with a container's network (host
// name, ports, DNS, links, MAC address) are the parent's business and are
// left out; anonymous volumes are mounted by name so their data stays.
func copyConfig(old container.InspectResponse, parentID string) (*container.Config, *container.HostConfig) {
	cfg := *old.Config
	hc := *old.HostConfig
	cfg.Hostname, cfg.Domainname, cfg.ExposedPorts = "", "", nil
	hc.NetworkMode = container.NetworkMode("container:" + parentID)
	hc.PortBindings, hc.PublishAllPorts = nil, false
	hc.DNS, hc.DNSOptions, hc.DNSSearch, hc.ExtraHosts, hc.Links = nil, nil, nil, nil, nil
	// Mounted by name below, whatever they are called in Binds or Mounts.
	covered := map[string]bool{}
	for _, b := range hc.Binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 {
			covered[parts[1]] = true
		}
	}
	hc.Mounts = append([]mount.Mount(nil), hc.Mounts...)
	for _, m := range hc.Mounts {
		covered[m.Target] = true
	}
	for _, m := range old.Mounts {
		if m.Type == mount.TypeVolume && m.Name != "" && !covered[m.Destination] {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: !m.RW})
		}
	}
	return &cfg, &hc
}
