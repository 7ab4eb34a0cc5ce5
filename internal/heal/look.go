package heal

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// scheduleLook makes sure the container is looked at at t; h.mu is held. It
// has one timer, at the earliest time asked for; a later time is kept and
// looked at after it, since each look may have a reason of its own.
func (h *Healer) scheduleLook(e *entry, o events.Observed, cause string, t time.Time) {
	if h.stopped {
		return
	}
	if e.timer != nil {
		if !e.due.After(t) {
			e.later = latest(e.later, t)
			return
		}
		e.timer.Stop()
		e.later = latest(e.later, e.due)
	}
	id, kind := o.ContainerID, o.Kind
	// Each look is a cause of its own: decisions' ids derive from their
	// cause, and a retry must not be taken for a duplicate of the first try.
	if i := strings.Index(cause, "/look@"); i >= 0 {
		cause = cause[:i]
	}
	look := cause + "/look@" + strconv.FormatInt(t.UnixNano(), 10)
	var timer Timer
	timer = h.o.AfterFunc(max(t.Sub(h.o.Now()), 0), func() {
		h.mu.Lock()
		if e.timer != timer {
			h.mu.Unlock()
			return
		}
		e.timer, e.due = nil, time.Time{}
		later := e.later
		e.later = time.Time{}
		h.spawnLocked(func() {
			h.look(id, kind, look)
			if !later.IsZero() {
				h.mu.Lock()
				h.scheduleLook(e, o, cause, later)
				h.mu.Unlock()
			}
		})
		h.mu.Unlock()
	})
	e.timer, e.due = timer, t
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// look inspects a container when a timer of ours fires, and decides on
// what it finds: no event will come to say that it needs healing.
func (h *Healer) look(id string, kind events.Kind, cause string) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	c, err := h.o.Docker.Inspect(ctx, id)
	cancel()
	if err != nil {
		h.o.Log.Debug("look: cannot inspect", "container_id", events.ShortID(id), "err", err)
		return
	}
	o := events.Observed{Kind: kind, ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Reconciled: true, Received: time.Now()}
	h.endPause(o, cause)
	if c.Running && !c.Paused && c.Health == "unhealthy" && kind != events.DockerDie {
		// Published as a listing's observation, the cause of what follows.
		o.Kind, o.DockerTime = events.DockerUnhealthy, c.HealthTime
		h.Handle(o)
		return
	}
	if !Watched(o.Labels, o.Name, h.o.Label, h.o.Namespace) {
		return
	}
	p := h.policy(o, cause)
	obs := Observation{Observed: o, Purpose: FromLook, Look: c}
	var parentID string
	if ref, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok && !c.Running {
		pctx, pcancel := context.WithTimeout(h.ctx, 30*time.Second)
		pc, err := h.o.Docker.Inspect(pctx, ref)
		pcancel()
		if err == nil && Watched(pc.Labels, pc.Name, h.o.Label, h.o.Namespace) {
			parentID, obs.Parent, obs.ParentRunning = pc.ID, pc.Name, pc.Running && !pc.Restarting
		}
	}
	h.mu.Lock()
	e := h.entry(id)
	if parentID != "" {
		if pe := h.entries[parentID]; pe != nil {
			obs.ParentDiedAt = pe.state.DiedAt
			obs.ParentRunning = obs.ParentRunning && !pe.state.InFlight
		}
	}
	if obs.Parent == "" {
		obs.Parent = e.state.OwedParent
	}
	d := Decide(e.state, obs, p, h.o.Now())
	h.act(e, obs, cause, d, p)
	h.mu.Unlock()
}
