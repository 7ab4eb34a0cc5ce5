package heal

import (
	"strconv"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Pause holds healing of container c for maintenance until until (zero:
// until Resume), recording why; its events are still recorded. The pause
// is an event in the history, so it outlives a restart of the healer.
func (h *Healer) Pause(c events.Container, until time.Time, reason string) events.Event {
	o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels}
	now := h.o.Now()
	cause := "control/" + events.ShortID(c.ID) + "/" + strconv.FormatInt(now.UnixNano(), 10)
	d := events.Data{Reason: reason}
	if !until.IsZero() {
		u := until.UTC()
		d.Until = &u
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(c.ID)
	ev := h.derived(events.ControlPaused, cause, o, d)
	h.record(e, ev)
	if !until.IsZero() {
		h.scheduleLook(e, o, cause, until)
	}
	h.o.Log.Info("paused for maintenance", "container", c.Name, "container_id", events.ShortID(c.ID), "until", until, "reason", reason)
	return ev
}

// Resume ends a pause at once and looks at the container: one still
// unhealthy is healed now. It reports false when c was not paused.
func (h *Healer) Resume(c events.Container, reason string) (events.Event, bool) {
	o := events.Observed{ContainerID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels}
	now := h.o.Now()
	cause := "control/" + events.ShortID(c.ID) + "/" + strconv.FormatInt(now.UnixNano(), 10)
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(c.ID)
	if !e.state.PausedAt(now) {
		return events.Event{}, false
	}
	ev := h.derived(events.ControlResumed, cause, o, events.Data{Reason: reason})
	h.record(e, ev)
	h.scheduleLook(e, o, cause, now)
	h.o.Log.Info("resumed", "container", c.Name, "container_id", events.ShortID(c.ID), "reason", reason)
	return ev, true
}

// Paused lists the ids of the containers paused now.
func (h *Healer) Paused() []string {
	now := h.o.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for id, e := range h.entries {
		if e.state.PausedAt(now) {
			ids = append(ids, id)
		}
	}
	return ids
}

// endPause records the end of a pause whose time is up, before a look
// decides on the container.
func (h *Healer) endPause(o events.Observed, cause string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[o.ContainerID]
	if e == nil || !e.state.Paused || e.state.PausedAt(h.o.Now()) {
		return
	}
	h.record(e, h.derived(events.ControlResumed, cause, o, events.Data{Reason: "the pause's time is up"}))
	h.o.Log.Info("pause ended", "container", o.Name, "container_id", events.ShortID(o.ContainerID))
}
