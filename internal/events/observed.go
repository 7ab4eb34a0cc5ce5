package events

import "time"

// Observed is one thing seen on the Docker Engine, already converted from the
// API's types: either an event from the stream or the state found by listing.
type Observed struct {
	Kind        Kind
	ContainerID string
	Name        string
	Image       string
	Labels      map[string]string
	ExitCode    *int
	Signal      string
	// DockerTime is the daemon's clock.
	DockerTime time.Time
	// Received is our clock when the event was read, for latency.
	Received time.Time
	// Replayed marks events the daemon sent again after a reconnect (older
	// than the subscription): they may describe a state that has passed.
	Replayed bool
	// Reconciled marks state found by listing, not by the event stream.
	Reconciled bool
	// AmbiguousAttrs names the event attributes (exitCode, signal) that a
	// container label of the same name may have overwritten: the daemon
	// copies labels over them. The watcher reads the truth from inspect.
	AmbiguousAttrs []string
}

// ID is the deterministic event id of the observation on host.
func (o Observed) ID(host string) string {
	return DockerEventID(host, o.ContainerID, o.Kind, o.DockerTime.UnixNano())
}

// Event is the published form of the observation.
func (o Observed) Event(host string) Event {
	return New(o.Kind, o.ID(host), o.DockerTime, o.Name, Data{
		Host:           host,
		ContainerID:    o.ContainerID,
		Container:      o.Name,
		Image:          o.Image,
		DockerTimeNano: o.DockerTime.UnixNano(),
		ExitCode:       o.ExitCode,
		Signal:         o.Signal,
		Reconciled:     o.Reconciled,
	})
}

// Container is what the healer reads of one container when it looks.
type Container struct {
	ID         string
	Name       string
	Image      string
	Labels     map[string]string
	Running    bool
	Restarting bool
	Paused     bool
	Health     string
	// HealthTime and HealthLog are the end and output of the latest probe.
	HealthTime time.Time
	HealthLog  string
	// FailedProbe is the output of the latest failed probe.
	FailedProbe string
	ExitCode    int
	OOMKilled   bool
	StartedAt   time.Time
	// NetworkMode is the container's network mode, such as container:<id>.
	NetworkMode string
	// RestartsItself: the container's own restart policy will start it again.
	RestartsItself bool
	// Created is when the container was created.
	Created time.Time
	// HasHealthcheck: the container has a HEALTHCHECK, so Health means something.
	HasHealthcheck bool
	// StopTimeout is the container's own stop timeout, 0 if it has none.
	StopTimeout time.Duration
}
