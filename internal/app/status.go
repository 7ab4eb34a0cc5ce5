package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/status"
)

// Status builds the status with the last limit events from the healer's
// own view: it makes no Docker call, so polling it costs the daemon
// nothing. The JSON is encoded once per change of the view (and at most
// every statusMaxAge, as restarts leave the day's window), not per request:
// with a thousand containers it is hundreds of KB.
func (a *App) Status(_ context.Context, limit int) (any, error) {
	k := statusKey{version: a.view.Version(), limit: limit, docker: a.dockerUp.Load()}
	if err := a.Ready(); err != nil {
		k.notReady = err.Error()
	}
	if p := a.dockerErr.Load(); p != nil && !k.docker {
		k.dockerErr = *p
	}
	now := time.Now()
	a.statusMu.Lock()
	defer a.statusMu.Unlock()
	if a.statusBody != nil && a.statusKey == k && now.Sub(a.statusAt) < statusMaxAge {
		return a.statusBody, nil
	}
	snap := a.view.SnapshotOf(a.host, now, limit)
	st := Status{Host: a.host, Version: a.version, Ready: k.notReady == "", NotReady: k.notReady,
		DockerConnected: k.docker, DockerError: k.dockerErr, DryRun: a.cfg.Policy.DryRun, Events: snap.Events, Containers: snap.Containers}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	a.statusKey, a.statusAt, a.statusBody = k, now, json.RawMessage(append(b, '\n'))
	return a.statusBody, nil
}

// statusMaxAge bounds how long an encoded status serves while the view
// does not change.
const statusMaxAge = time.Second

// statusKey is what an encoded status depends on besides the time.
type statusKey struct {
	version             uint64
	limit               int
	docker              bool
	notReady, dockerErr string
}

// relist asks listView for a listing; it never blocks (it runs on the
// Docker watcher's sink).
func (a *App) relist() {
	select {
	case a.relisted <- struct{}{}:
	default:
	}
}

// listView lists the containers into the status view whenever the watcher
// (re)connects and at each reconcile interval: events say what changes,
// and a listing says what was there before them or while the stream was
// down.
func (a *App) listView(ctx context.Context) error {
	var tick <-chan time.Time
	if d := a.cfg.DockerReconcileInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.relisted:
		case <-tick:
			if !a.dockerUp.Load() {
				continue
			}
		}
		if err := a.listOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("listing containers for the status view failed; it shows what events said", "err", err)
		}
	}
}

// followAnyway is how long the status view's replay waits for readiness.
const followAnyway = 10 * time.Second

func (a *App) listOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	at := time.Now()
	list, err := a.docker.List(ctx)
	if err != nil {
		return err
	}
	var cs []status.Listed
	for _, c := range list {
		if !config.Selected(c.Labels, a.cfg.ContainerLabel) || !config.InNamespace(c.Name, a.cfg.Namespace) {
			continue
		}
		l := status.Listed{ID: c.ID, Name: c.Name, Image: c.Image, Health: c.Health, State: "exited", NetworkMode: c.NetworkMode}
		switch {
		case c.Restarting:
			l.State = "restarting"
		case c.Running:
			l.State = "running"
		}
		cs = append(cs, l)
	}
	a.view.List(a.host, at, cs)
	return nil
}

// followView replays the last status.Window of events into the view, then
// follows new ones. It starts once the healer is ready, or after
// followAnyway if it is not (Docker down: the history is then all the page
// can show): the replay is for people and must not hold up healing.
func (a *App) followView(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	anyway := time.After(followAnyway)
	for a.Ready() != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-anyway:
			a.log.Info("not ready yet; reading the status page's history anyway", "after", followAnyway)
		case <-t.C:
			continue
		}
		break
	}
	t.Stop()
	// With the store degraded the view waits for it, and healing goes on.
	if err := a.bus.WaitUp(ctx); err != nil {
		return nil
	}
	if err := bus.Follow(ctx, a.bus.JetStream(), bus.EventsStream, events.SubjectRoot+".>", time.Now().Add(-status.Window), a.project); err != nil {
		return fmt.Errorf("status view: %w", err)
	}
	return nil
}

// forgetSeries deletes a destroyed container's metric series, so that a
// host where containers come and go does not grow them without end. Names
// are unique among a daemon's containers, so no live one shares them. The
// series of a notify target from its labels go too: another container
// with the same URL starts its count again, which counters allow.
func (a *App) forgetSeries(o events.Observed) {
	if o.Name != "" {
		a.restarts.DeletePartialMatch(prometheus.Labels{"container": o.Name})
	}
	if p, _ := a.overrides.Policy(a.cfg.Policy, o.Labels); p.NotifyURL != "" && p.NotifyURL != a.cfg.Policy.NotifyURL {
		a.sent.DeletePartialMatch(prometheus.Labels{"target": events.NotifyTargetID(p.NotifyURL)})
	}
}

// project folds a stored event into the status view, and counts what
// metrics count from the stream.
func (a *App) project(m jetstream.Msg) {
	e, err := events.Unmarshal(m.Data())
	if err != nil {
		a.log.Debug("status: skipping undecodable event", "subject", m.Subject(), "err", err)
		return
	}
	a.view.Apply(e)
	if e.Kind() == events.CleanupRemoved && !e.Data.DryRun && e.Time.After(a.started) {
		a.dupes.Inc()
	}
}

// Status is the JSON of the status endpoint: the watched containers as the
// healer's own view holds them (see status.go).
type Status struct {
	Host            string `json:"host"`
	Version         string `json:"version"`
	Ready           bool   `json:"ready"`
	NotReady        string `json:"not_ready,omitempty"`
	DockerConnected bool   `json:"docker_connected"`
	// DryRun: monitor-only mode, no container is touched.
	DryRun      bool               `json:"dry_run"`
	DockerError string             `json:"docker_error,omitempty"`
	Containers  []status.Container `json:"containers"`
	Events      []events.Event     `json:"events"`
}
