package heal

import (
	"runtime"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// Handle takes one observation. It never blocks on I/O: it runs on the
// Docker watcher's sink (the event stream's goroutine, and beside it the
// reconcile listings and resolved dies) and on look timers, so it is safe
// for concurrent calls, under h.mu.
func (h *Healer) Handle(o events.Observed) {
	if !Watched(o.Labels, o.Name, h.o.Label, h.o.Namespace) {
		if o.Kind == events.DockerStart && !o.Replayed {
			// Its selected dependents are told why they are left alone.
			h.mu.Lock()
			h.spawnLocked(func() { h.dependentsOf(o, o.ID(h.o.Host), ParentStarted) })
			h.mu.Unlock()
		}
		return
	}
	ev := o.Event(h.o.Host)
	cause := ev.ID
	policy := h.policy(o, cause)
	now := h.o.Now()
	obs := Observation{Observed: o}

	h.mu.Lock()
	e := h.entry(o.ContainerID)
	if o.Kind == events.DockerDie {
		obs.ParentDiedRecently = !h.lastDie.IsZero() && o.DockerTime.Sub(h.lastDie) <= diedWithWindow
		h.lastDie = latest(h.lastDie, o.DockerTime)
	}
	if e.name == "" {
		e.name = originalName(o.Name)
	}
	d := Decide(e.state, obs, policy, now)
	h.record(e, ev)
	if o.Kind == events.DockerDestroy {
		h.forgetParent(e.name, o.ContainerID, e.state.DiedAt)
		h.forget(o.ContainerID, e)
		name := e.name
		// A container already created under its name (compose renames the
		// old one aside first) takes over its dependents now.
		h.spawnLocked(func() { h.reattachByName(name, o.ContainerID, cause) })
		h.mu.Unlock()
		return
	}
	if g, ok := h.gone[originalName(o.Name)]; ok && o.Kind == events.DockerStart && g.id != o.ContainerID {
		parent := events.Container{ID: o.ContainerID, Name: o.Name, Running: true}
		h.spawnLocked(func() { h.reattach(g, parent, cause) })
	}
	restart := h.act(e, obs, cause, d, policy)
	// A start that is not the healer's own restart (which sees to the
	// dependents itself) may find dependents that died with this one.
	parentStarted := o.Kind == events.DockerStart && !o.Replayed && !e.state.InFlight
	if parentStarted {
		h.spawnLocked(func() { h.dependentsOf(o, cause, ParentStarted) })
	}
	h.mu.Unlock()

	h.o.Log.Debug("observed", "container", o.Name, "event", o.Kind, "reconciled", o.Reconciled, "replayed", o.Replayed, "verdict", d.Verdict)
	if restart {
		// Hand this processor to the restart, which is next in line for it,
		// so its request goes out before the next event is read: in a storm
		// the other processors are busy, and it would wait behind the burst.
		runtime.Gosched()
	}
}

func (h *Healer) policy(o events.Observed, cause string) config.Policy {
	p, errs := h.overrides.Policy(h.o.Policy, o.Labels)
	// Under all, a crash is healed only where asked for: a batch job that
	// exits non-zero is not ours to start again.
	if h.o.Label == "all" && !p.HealExitedSet && !config.Selected(o.Labels, config.DefaultLabel) {
		p.HealExited = false
	}
	for _, e := range errs {
		key := o.ContainerID + "\x00" + e.Label + "\x00" + e.Value
		h.mu.Lock()
		_, seen := h.warned[key]
		h.warned[key] = struct{}{}
		h.mu.Unlock()
		if seen {
			continue
		}
		h.o.Log.Warn("invalid label value; using the default for this key", "container", o.Name, "label", e.Label, "value", e.Value, "expected", e.Expected)
		h.o.Publisher.Publish(h.derived(events.ConfigError, cause+"/"+e.Label, o, events.Data{
			Label: e.Label, Value: e.Value, Expected: e.Expected,
			Reason: "invalid label value; the default is used for this key",
		}))
	}
	return p
}
