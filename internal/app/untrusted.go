package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// guard reports panics on outside input as healer.panic.
func (a *App) guard() *safe.Guard { return &safe.Guard{Log: a.log, Pub: a.pub, Host: a.host} }

// observe is the Docker watcher's sink. A panic on one container's event
// is reported with the event and the next event is read as usual.
func (a *App) observe(o events.Observed) {
	_ = a.guard().Call("docker watcher sink", func() string {
		return fmt.Sprintf("%s %s %s (%d labels)", o.Kind, events.ShortID(o.ContainerID), o.Name, len(o.Labels))
	}, func() {
		a.warnSelection(o)
		a.useRoute(o.Name, o.ContainerID, o.Labels)
		a.observed.WithLabelValues(string(o.Kind)).Inc()
		a.healer.Handle(o)
		if o.Kind == events.DockerDestroy {
			a.forgetSeries(o)
		}
	})
}

// selectionWarnings remembers the bad selection labels already told.
type selectionWarnings struct {
	mu   sync.Mutex
	told map[string]bool
}

// warnSelection tells, once per container, label and value, of a
// selection label whose value is not a boolean: it selects nothing, and
// the operator should hear of it rather than wonder.
func (a *App) warnSelection(o events.Observed) {
	if !config.InNamespace(o.Name, a.cfg.Namespace) {
		return
	}
	for _, e := range config.SelectionErrors(o.Labels, a.cfg.ContainerLabel) {
		key := o.ContainerID + "\x00" + e.Label + "\x00" + e.Value
		a.selWarn.mu.Lock()
		if a.selWarn.told == nil {
			a.selWarn.told = map[string]bool{}
		}
		told := a.selWarn.told[key]
		a.selWarn.told[key] = true
		a.selWarn.mu.Unlock()
		if told {
			continue
		}
		v := safe.Bound(e.Value, 256)
		a.log.Warn("selection label is not a boolean; it is ignored", "container", o.Name, "label", e.Label, "value", v, "expected", e.Expected)
		a.pub.Publish(events.New(events.ConfigError, events.DerivedID(o.ID(a.host)+"/"+e.Label, events.ConfigError), time.Now(), o.Name, events.Data{
			Host: a.host, ContainerID: o.ContainerID, Container: o.Name, Label: e.Label, Value: v, Expected: e.Expected,
			Reason: "selection label is not a boolean; it is ignored",
		}))
	}
}

// useRoute records where the container's events are to be told: its own
// notify target, its own notify level, both or neither. The notifiers
// route each event by it (by the container's id: a name passes from one
// container to another), and a target's consumer reads only the subjects
// of the containers that name it.
func (a *App) useRoute(name, containerID string, labels map[string]string) {
	if name == "" || !config.Selected(labels, a.cfg.ContainerLabel) || !config.InNamespace(name, a.cfg.Namespace) {
		return
	}
	url, level := a.overrides.Notify(a.cfg.Policy, labels)
	id := ""
	if url != "" {
		id = events.NotifyTargetID(url)
	}
	a.routes.Record(strings.TrimPrefix(name, "/"), containerID, id, url, level)
}

// refreshRoutes tells the routes, every 30 minutes, of the containers that still
// name them: a container that runs well sends no events for days, and its
// route must not be taken for idle.
func (a *App) refreshRoutes(ctx context.Context) error {
	// Not at start: events bring the routes in use then, and the listing
	// at connect is the only one a start costs the daemon.
	t := time.NewTicker(30 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		cs, err := a.docker.List(lctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			a.log.Debug("notify routes: cannot list containers; trying again later", "err", err)
		}
		for _, c := range cs {
			_ = a.guard().Call("notify routes refresh", func() string { return c.Name }, func() { a.useRoute(c.Name, c.ID, c.Labels) })
		}
	}
}
