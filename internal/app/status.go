package app

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/status"
)

// Status builds the status with the last limit events from the healer's
// own view: it makes no Docker call, so polling it costs the daemon nothing.
func (a *App) Status(_ context.Context, limit int) (any, error) {
	snap := a.view.SnapshotOf(a.host, time.Now(), limit)
	st := Status{Host: a.host, Version: a.version, DockerConnected: a.dockerUp.Load(), Events: snap.Events, Containers: snap.Containers}
	if err := a.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	if !st.DockerConnected {
		if p := a.dockerErr.Load(); p != nil {
			st.DockerError = *p
		}
	}
	return st, nil
}

// relist asks listView for a listing; it never blocks (it runs on the
// event stream's goroutine).
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
		l := status.Listed{ID: c.ID, Name: c.Name, Image: c.Image, Health: c.Health, State: "exited"}
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
// follows new ones. It starts once the healer is ready: the replay is for
// people and must not hold up healing.
func (a *App) followView(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for a.Ready() != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	t.Stop()
	if err := bus.Follow(ctx, a.bus.JetStream(), bus.EventsStream, events.SubjectRoot+".>", time.Now().Add(-status.Window), a.project); err != nil {
		return fmt.Errorf("status view: %w", err)
	}
	return nil
}

// forgetSeries deletes a destroyed container's metric series, so that a
// host where containers come and go does not grow them without end. Names
// are unique among a daemon's containers, so no live one shares them.
func (a *App) forgetSeries(name string) {
	if name == "" {
		return
	}
	a.restarts.DeletePartialMatch(prometheus.Labels{"container": name})
}
