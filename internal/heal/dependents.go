package heal

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// goneParent is a removed container that dependents may still point at.
type goneParent struct {
	id     string
	diedAt time.Time
}

// maxGone bounds the memory of removed containers' names.
const maxGone = 1024

// forgetParent remembers a removed container by name; h.mu is held.
func (h *Healer) forgetParent(name, id string, diedAt time.Time) {
	if len(h.gone) >= maxGone {
		for k := range h.gone {
			delete(h.gone, k)
			break
		}
	}
	h.gone[name] = goneParent{id: id, diedAt: diedAt}
}

// originalName is a container's name without the <12 hex>_ prefix that
// docker-compose v1 gives a container it renames aside to recreate it.
func originalName(name string) string {
	if len(name) > 13 && name[12] == '_' {
		for _, r := range name[:12] {
			if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
				return name
			}
		}
		return name[13:]
	}
	return name
}

// dependentsOf decides on the selected containers that share the network
// of a container just restarted by the healer (AsDependent: without it
// they have none) or started again by someone else (ParentStarted: those
// that died with it are started). Each is decided with its own state and
// policy, in turn, so a chain resolves in order.
func (h *Healer) dependentsOf(parent events.Observed, cause string, purpose Purpose) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	deps, err := h.o.Docker.Dependents(ctx, parent.ContainerID, parent.Name)
	var composed []events.Container
	if err == nil && purpose == AsDependent {
		composed, err = h.o.Docker.ComposeDependents(ctx, events.Container{ID: parent.ContainerID, Name: parent.Name, Labels: parent.Labels})
	}
	cancel()
	if err != nil {
		h.o.Log.Error("cannot list dependents; they may have lost their network", "container", parent.Name, "err", err)
		return
	}
	compose := map[string]bool{}
	for _, c := range composed {
		if !slices.ContainsFunc(deps, func(d events.Container) bool { return d.ID == c.ID }) {
			deps = append(deps, c)
			compose[c.ID] = true
		}
	}
	parentSelected := Watched(parent.Labels, parent.Name, h.o.Label, h.o.Namespace)
	h.mu.Lock()
	var parentDied time.Time
	if pe := h.entries[parent.ContainerID]; pe != nil {
		parentDied = pe.state.DiedAt
	}
	h.mu.Unlock()
	for _, c := range deps {
		if !Watched(c.Labels, c.Name, h.o.Label, h.o.Namespace) {
			h.o.Log.Warn("dependent not selected; left alone without network", "container", c.Name, "parent", parent.Name)
			continue
		}
		if purpose == ParentStarted && c.Running && parentSelected {
			// Its network survives a parent it did not die with only if
			// the healer restarts it; a start by someone else is theirs.
			continue
		}
		if !c.Running || purpose == ParentStarted {
			// The listing may be a second old: its death decides.
			ictx, icancel := context.WithTimeout(h.ctx, 30*time.Second)
			fresh, err := h.o.Docker.Inspect(ictx, c.ID)
			icancel()
			if err != nil {
				continue
			}
			c = fresh
		}
		o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Received: time.Now()}
		dcause := cause + "/" + events.ShortID(c.ID)
		p := h.policy(o, dcause)
		if !p.RestartDependents {
			continue
		}
		obs := Observation{Observed: o, Purpose: purpose, Look: c, Parent: parent.Name, ParentDiedAt: parentDied, ParentRunning: true, Compose: compose[c.ID],
			ParentNotSelected: !parentSelected}
		// Already acted on in this chain: it depends on itself.
		obs.Cycle = strings.Contains(cause+"/", "/"+events.ShortID(c.ID)+"/")
		h.mu.Lock()
		e := h.entry(c.ID)
		d := Decide(e.state, obs, p, h.o.Now())
		var req events.Event
		send := d.Verdict == Restart && d.Action != config.ActionNotify
		if send {
			req = h.decisionFor(e, events.RestartRequested, dcause, obs, d, p)
			e.state.InFlight, e.state.Pending, e.state.OwedParent = true, true, ""
		} else {
			h.act(e, obs, dcause, d, p)
		}
		h.mu.Unlock()
		if send {
			h.restart(o, dcause, req, p)
		}
	}
}

// reattachByName looks for a container now under the name of a removed
// one, oldID, and moves its dependents onto it.
func (h *Healer) reattachByName(name, oldID, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	// Most removed containers have no dependents: the shared listing says
	// so without a call per container.
	if deps, err := h.o.Docker.Dependents(ctx, oldID, oldID); err != nil || len(deps) == 0 {
		return
	}
	c, err := h.o.Docker.Inspect(ctx, name)
	if err != nil || c.ID == oldID || !config.Selected(c.Labels, h.o.Label) {
		return
	}
	h.mu.Lock()
	g, ok := h.gone[name]
	h.mu.Unlock()
	if !ok || g.id != oldID {
		return
	}
	h.reattach(g, c, cause)
}

// reattach recreates the selected containers whose network is still
// container:<the removed one> on parent, the container now under its name.
// Each is decided with its own state and policy.
func (h *Healer) reattach(old goneParent, parent events.Container, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	deps, err := h.o.Docker.Dependents(ctx, old.id, old.id)
	cancel()
	if err != nil {
		h.o.Log.Error("cannot list the dependents of a recreated container; they may point at the removed one", "container", parent.Name, "err", err)
		return
	}
	for _, d := range deps {
		ictx, icancel := context.WithTimeout(h.ctx, 30*time.Second)
		c, err := h.o.Docker.Inspect(ictx, d.ID)
		icancel()
		if err != nil || c.NetworkMode != "container:"+old.id {
			// Removed or recreated meanwhile.
			continue
		}
		if !Watched(c.Labels, c.Name, h.o.Label, h.o.Namespace) {
			h.o.Log.Warn("dependent not selected; left pointing at its removed network parent", "container", c.Name, "parent", parent.Name)
			continue
		}
		h.recreate(c, old, parent, cause+"/"+events.ShortID(c.ID))
	}
}

// recreate decides on one dependent left behind by its recreated parent,
// and recreates it on the new one.
func (h *Healer) recreate(c events.Container, old goneParent, parent events.Container, cause string) {
	o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Received: time.Now()}
	p := h.policy(o, cause)
	obs := Observation{Observed: o, Purpose: ParentRecreated, Look: c, Parent: parent.Name, ParentDiedAt: old.diedAt, ParentRunning: parent.Running}
	h.mu.Lock()
	e := h.entry(c.ID)
	d := Decide(e.state, obs, p, h.o.Now())
	if d.Verdict != Recreate {
		h.act(e, obs, cause, d, p)
		h.mu.Unlock()
		return
	}
	h.decisionFor(e, events.RecreateRequested, cause, obs, d, p)
	e.state.InFlight = true
	h.mu.Unlock()

	h.o.Log.Info("recreating a dependent on its recreated network parent", "container", c.Name, "container_id", events.ShortID(c.ID), "parent", parent.Name, "start", d.Start)
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	started := time.Now()
	newID, err := h.o.Docker.Recreate(ctx, c.ID, parent.ID, d.Start && parent.Running, func(newID string) {
		// Its history goes on under its name: the budget carries over
		// before the copy's first event.
		h.mu.Lock()
		defer h.mu.Unlock()
		ne := h.entry(newID)
		ne.name = e.name
		carried := e.state
		ns := ne.state
		ns.LastRestart, ns.Attempt, ns.FrameStart, ns.FrameRestarts, ns.BackoffStep = carried.LastRestart, carried.Attempt, carried.FrameStart, carried.FrameRestarts, carried.BackoffStep
		ns.GaveUp, ns.LongestHealthy, ns.Ours, ns.RestartDone = carried.GaveUp, carried.LongestHealthy, false, carried.RestartDone
		ne.state = ns
	})
	cancel()
	data := events.Data{Reason: d.Reason, Parent: parent.Name, DurationMS: float64(time.Since(started).Microseconds()) / 1000}

	h.mu.Lock()
	defer h.mu.Unlock()
	e.state.InFlight = false
	if newID == "" {
		h.o.Log.Error("recreate failed; the dependent is left as it was", "container", c.Name, "parent", parent.Name, "err", err)
		data.Error = err.Error()
		h.record(e, h.derived(events.RecreateFailed, cause, o, data))
		return
	}
	if err != nil {
		h.o.Log.Warn("recreated, with a problem", "container", c.Name, "err", err)
		data.Error = err.Error()
	}
	data.NewContainerID = newID
	h.record(e, h.derived(events.Recreated, cause, o, data))
	if h.entries[c.ID] == e {
		delete(h.entries, c.ID)
	}
}
