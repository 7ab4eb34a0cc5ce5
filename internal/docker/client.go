// Package docker owns the connection to the Docker Engine. It is the only
// package that imports the moby client, and it converts the API's types into
// events.Observed and Container at the boundary.
package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sync/singleflight"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// Client talks to one Docker Engine.
type Client struct {
	api *client.Client
	// timeout bounds each short call (ping, info, inspect, list): a daemon
	// that hangs on one must not hang the healer.
	timeout time.Duration

	// The dependents index: which containers share another's network.
	// Listing every container per restart would cost a storm of N restarts
	// N full lists; restarts within depTTL share one.
	depGroup singleflight.Group
	depMu    sync.Mutex
	depAt    time.Time
	depIndex []hmd.Container
	// depGen counts the creates and removals seen: a listing begun before
	// one is not kept.
	depGen uint64
}

// dropDependents forgets the dependents index: a container was created or
// removed, and the next question must see it.
func (c *Client) dropDependents() {
	c.depMu.Lock()
	c.depAt = time.Time{}
	c.depGen++
	c.depMu.Unlock()
}

// depTTL is how long one listing of network-mode dependents serves.
const depTTL = time.Second

// NewFromEnv builds a client from DOCKER_HOST, DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH and DOCKER_API_VERSION. Without DOCKER_API_VERSION the
// version is negotiated on the first request, so any engine from API 1.40 up
// works.
func NewFromEnv() (*Client, error) {
	api, err := client.New(client.FromEnv, client.WithUserAgent("healmydocker"))
	if err != nil {
		return nil, fmt.Errorf("docker client from environment: %w", err)
	}
	return &Client{api: api, timeout: DefaultTimeout}, nil
}

// DefaultTimeout is how long a short call (ping, info, inspect, list) may
// take before it is abandoned.
const DefaultTimeout = 10 * time.Second

// SetTimeout sets the deadline of short calls; 0 keeps the default.
func (c *Client) SetTimeout(d time.Duration) {
	if d > 0 {
		c.timeout = d
	}
}

// Timeout is the deadline of short calls.
func (c *Client) Timeout() time.Duration { return c.timeout }

// short bounds ctx by the short-call deadline, keeping a tighter one.
func (c *Client) short(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// Host is the daemon address, for messages.
func (c *Client) Host() string { return c.api.DaemonHost() }

// Info is what the healer needs to know of the daemon.
type Info struct {
	Name       string
	APIVersion string
	Version    string
	// Skew is the least the daemon's clock can be ahead of ours: replays are
	// judged by it, and erring low treats a doubtful event as live.
	Skew time.Duration
}

// Connect pings the daemon, negotiating the API version, and reads its name.
func (c *Client) Connect(ctx context.Context) (Info, error) {
	ctx, cancel := c.short(ctx)
	defer cancel()
	ping, err := c.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return Info{}, fmt.Errorf("ping docker at %s: %w", c.Host(), err)
	}
	res, err := c.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("docker info at %s: %w", c.Host(), err)
	}
	after := time.Now()
	info := Info{Name: res.Info.Name, APIVersion: ping.APIVersion, Version: res.Info.ServerVersion}
	if t, err := time.Parse(time.RFC3339Nano, res.Info.SystemTime); err == nil {
		info.Skew = t.Sub(after)
	}
	return info, nil
}

// Ping checks the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.short(ctx)
	defer cancel()
	if _, err := c.api.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("ping docker at %s: %w", c.Host(), err)
	}
	return nil
}

// Restart restarts a container, giving it timeout to stop. A negative
// timeout sends none, so the daemon uses the container's own stop timeout
// (its default, 10 s, when it has none). Parts of a second round up: a
// sub-second timeout must not become an immediate SIGKILL.
func (c *Client) Restart(ctx context.Context, id string, timeout time.Duration) error {
	opts := client.ContainerRestartOptions{}
	what := "the container's own stop timeout"
	if timeout >= 0 {
		secs := int((timeout + time.Second - 1) / time.Second)
		opts.Timeout = &secs
		what = fmt.Sprintf("stop timeout %ds", secs)
	}
	if _, err := c.api.ContainerRestart(ctx, id, opts); err != nil {
		return fmt.Errorf("restart %s (%s): %w", hmd.ShortID(id), what, err)
	}
	return nil
}

// Inspect reads one container.
func (c *Client) Inspect(ctx context.Context, id string) (hmd.Container, error) {
	ctx, cancel := c.short(ctx)
	defer cancel()
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return hmd.Container{}, fmt.Errorf("inspect %s: %w", hmd.ShortID(id), err)
	}
	return fromInspect(res.Container), nil
}

func fromInspect(r container.InspectResponse) hmd.Container {
	ct := hmd.Container{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/")}
	if r.Config != nil {
		ct.Image = r.Config.Image
		ct.Labels = r.Config.Labels
		if r.Config.StopTimeout != nil {
			ct.StopTimeout = time.Duration(*r.Config.StopTimeout) * time.Second
		}
	}
	ct.Created, _ = time.Parse(time.RFC3339Nano, r.Created)
	if r.HostConfig != nil {
		ct.NetworkMode = string(r.HostConfig.NetworkMode)
	}
	if s := r.State; s != nil {
		ct.Running, ct.Restarting, ct.Paused, ct.ExitCode, ct.OOMKilled = s.Running, s.Restarting, s.Paused, s.ExitCode, s.OOMKilled
		if r.HostConfig != nil {
			ct.RestartsItself = s.Restarting || restartsItself(r.HostConfig.RestartPolicy, s.ExitCode, r.RestartCount)
		}
		ct.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
		if h := s.Health; h != nil {
			ct.HasHealthcheck = true
			ct.Health = string(h.Status)
			if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
				ct.HealthTime = h.Log[n-1].End
				ct.HealthLog = h.Log[n-1].Output
			}
			// The log outlives a restart, so the failure that led to one
			// can be read after it.
			for i := len(h.Log) - 1; i >= 0; i-- {
				if l := h.Log[i]; l != nil && l.ExitCode != 0 {
					ct.FailedProbe = l.Output
					break
				}
			}
		}
	}
	return ct
}

// restartsItself says whether the daemon will start an exited container
// again by its restart policy.
func restartsItself(p container.RestartPolicy, exitCode, restarts int) bool {
	switch p.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return true
	case container.RestartPolicyOnFailure:
		return exitCode != 0 && (p.MaximumRetryCount == 0 || restarts < p.MaximumRetryCount)
	}
	return false
}

// Dependents lists containers whose network is parent's: network_mode
// container:<id or name>. They lose their network when it restarts.
func (c *Client) Dependents(ctx context.Context, parentID, parentName string) ([]hmd.Container, error) {
	index, err := c.dependentsIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("list dependents of %s: %w", parentName, err)
	}
	var out []hmd.Container
	for _, ct := range index {
		if ct.NetworkMode == "container:"+parentID || ct.NetworkMode == "container:"+parentName {
			out = append(out, ct)
		}
	}
	return out, nil
}

// Labels compose v2 writes: a container's project and service, and the
// services it depends on as service:condition:restart, comma-separated.
const (
	composeProject   = "com.docker.compose.project"
	composeService   = "com.docker.compose.service"
	composeDependsOn = "com.docker.compose.depends_on"
)

// ComposeDependents lists the containers of parent's compose project that
// depend on its service with restart: true. Compose restarts them only for
// restarts it runs itself.
func (c *Client) ComposeDependents(ctx context.Context, parent hmd.Container) ([]hmd.Container, error) {
	project, service := parent.Labels[composeProject], parent.Labels[composeService]
	if project == "" || service == "" {
		return nil, nil
	}
	index, err := c.dependentsIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("list compose dependents of %s: %w", parent.Name, err)
	}
	var out []hmd.Container
	for _, ct := range index {
		if ct.ID != parent.ID && ct.Labels[composeProject] == project && RestartsWith(ct.Labels[composeDependsOn], service) {
			out = append(out, ct)
		}
	}
	return out, nil
}

// RestartsWith says whether a com.docker.compose.depends_on label names
// service with restart true. Entries are service:condition:restart; older
// compose writes service:condition or just service, which do not restart.
func RestartsWith(dependsOn, service string) bool {
	for entry := range strings.SplitSeq(dependsOn, ",") {
		parts := strings.Split(strings.TrimSpace(entry), ":")
		if len(parts) == 3 && parts[0] == service && strings.EqualFold(parts[2], "true") {
			return true
		}
	}
	return false
}

// dependentsIndex lists the containers whose network is another's, or
// that carry compose's depends_on, at most
// once per depTTL, one listing for all the callers waiting on it.
func (c *Client) dependentsIndex(ctx context.Context) ([]hmd.Container, error) {
	c.depMu.Lock()
	if time.Since(c.depAt) < depTTL {
		idx := c.depIndex
		c.depMu.Unlock()
		return idx, nil
	}
	gen := c.depGen
	c.depMu.Unlock()
	// Keyed by generation: a listing begun before a create is not shared
	// with a caller after it.
	v, err, _ := c.depGroup.Do("dependents/"+strconv.FormatUint(gen, 10), func() (any, error) {
		ctx, cancel := c.short(ctx)
		defer cancel()
		res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true})
		if err != nil {
			return nil, err
		}
		var idx []hmd.Container
		for _, s := range res.Items {
			mode := s.HostConfig.NetworkMode
			if !strings.HasPrefix(mode, "container:") && s.Labels[composeDependsOn] == "" {
				continue
			}
			name := ""
			if len(s.Names) > 0 {
				name = strings.TrimPrefix(s.Names[0], "/")
			}
			idx = append(idx, hmd.Container{ID: s.ID, Name: name, Image: s.Image, Labels: s.Labels, Running: s.State == container.StateRunning, NetworkMode: mode})
		}
		c.depMu.Lock()
		if c.depGen == gen {
			c.depAt, c.depIndex = time.Now(), idx
		}
		c.depMu.Unlock()
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]hmd.Container), nil
}

// List returns every container, running or not, as the list API shows it:
// health comes from the status text, which every API version has.
func (c *Client) List(ctx context.Context) ([]hmd.Container, error) {
	ctx, cancel := c.short(ctx)
	defer cancel()
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]hmd.Container, 0, len(res.Items))
	for _, s := range res.Items {
		ct := hmd.Container{ID: s.ID, Image: s.Image, Labels: s.Labels, Running: s.State == container.StateRunning,
			Created: time.Unix(s.Created, 0), NetworkMode: s.HostConfig.NetworkMode}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		switch {
		case strings.Contains(s.Status, "(unhealthy)"):
			ct.HasHealthcheck, ct.Health = true, "unhealthy"
		case strings.Contains(s.Status, "(healthy)"):
			ct.HasHealthcheck, ct.Health = true, "healthy"
		case strings.Contains(s.Status, "(health: starting)"):
			ct.HasHealthcheck, ct.Health = true, "starting"
		}
		out = append(out, ct)
	}
	return out, nil
}

// Stop stops a container, giving it timeout before it is killed.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	opts := client.ContainerStopOptions{}
	what := "the container's own stop timeout"
	if timeout >= 0 {
		// Rounded up, as for restart: a part of a second is not a SIGKILL.
		secs := int((timeout + time.Second - 1) / time.Second)
		opts.Timeout = &secs
		what = fmt.Sprintf("stop timeout %ds", secs)
	}
	if _, err := c.api.ContainerStop(ctx, id, opts); err != nil {
		return fmt.Errorf("stop %s (%s): %w", hmd.ShortID(id), what, err)
	}
	return nil
}

// Remove removes a stopped container and keeps its volumes.
func (c *Client) Remove(ctx context.Context, id string) error {
	ctx, cancel := c.short(ctx)
	defer cancel()
	if _, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{}); err != nil {
		return fmt.Errorf("remove %s: %w", hmd.ShortID(id), err)
	}
	return nil
}

// listUnhealthy returns the ids of running unhealthy containers. The health
// filter works on every engine from API 1.24 up.
func (c *Client) listUnhealthy(ctx context.Context) ([]string, error) {
	ctx, cancel := c.short(ctx)
	defer cancel()
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{
		Filters: client.Filters{}.Add("health", "unhealthy").Add("status", "running"),
	})
	if err != nil {
		return nil, fmt.Errorf("list unhealthy containers: %w", err)
	}
	ids := make([]string, 0, len(res.Items))
	for _, s := range res.Items {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// exited is a container found exited, with when it exited.
type exited struct {
	hmd.Container
	Finished time.Time
}

// listExited returns the exited containers that select accepts (by their
// labels and name; nil accepts all), inspected for when they exited.
func (c *Client) listExited(ctx context.Context, selects func(labels map[string]string, name string) bool) ([]exited, error) {
	lctx, cancel := c.short(ctx)
	res, err := c.api.ContainerList(lctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("status", "exited")})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list exited containers: %w", err)
	}
	var out []exited
	for _, s := range res.Items {
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		if selects != nil && !selects(s.Labels, name) {
			continue
		}
		ictx, cancel := c.short(ctx)
		r, err := c.api.ContainerInspect(ictx, s.ID, client.ContainerInspectOptions{})
		cancel()
		if err != nil {
			if isHang(err) {
				return nil, fmt.Errorf("inspect exited %s: %w", hmd.ShortID(s.ID), err)
			}
			continue // removed since the list
		}
		e := exited{Container: fromInspect(r.Container)}
		if r.Container.State != nil {
			e.Finished, _ = time.Parse(time.RFC3339Nano, r.Container.State.FinishedAt)
		}
		out = append(out, e)
	}
	return out, nil
}

// isHang says whether err is a call that ran out of time: the daemon hangs.
func isHang(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
