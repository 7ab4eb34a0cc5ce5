// Package status owns the healer's view of its containers for people: a
// projection of the event stream (restarts in the frame, given up, the
// restarts of the last day, the last events) that the status endpoint and
// page read.
package status

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Window is how far back the restart timeline reaches.
const Window = 24 * time.Hour

// maxEvents bounds the recent events kept for the feed.
const maxEvents = 1000

// Restart is one restart on a container's timeline.
type Restart struct {
	Time   time.Time `json:"time"`
	OK     bool      `json:"ok"`
	Reason string    `json:"reason,omitempty"`
}

// Container is what the events say of one container.
type Container struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Host            string     `json:"host"`
	Image           string     `json:"image,omitempty"`
	State           string     `json:"state,omitempty"`
	Health          string     `json:"health,omitempty"`
	RestartsInFrame int        `json:"restarts_in_frame"`
	FrameStart      *time.Time `json:"frame_start,omitempty"`
	GivenUp         bool       `json:"given_up"`
	Restarts        []Restart  `json:"restarts"`
	LastEvent       string     `json:"last_event,omitempty"`
	LastEventTime   *time.Time `json:"last_event_time,omitempty"`
}

// View is the projection. Apply and Snapshot may be called concurrently.
type View struct {
	mu         sync.Mutex
	containers map[string]*Container // by host and container id
	recent     []events.Event
}

// NewView returns an empty view.
func NewView() *View { return &View{containers: map[string]*Container{}} }

func key(host, id string) string { return host + "/" + id }

// Apply folds one event into the view.
func (v *View) Apply(e events.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.recent = append(v.recent, e)
	if n := len(v.recent) - maxEvents; n > 0 {
		v.recent = append(v.recent[:0:0], v.recent[n:]...)
	}
	d := e.Data
	if d.ContainerID == "" {
		return
	}
	k := key(d.Host, d.ContainerID)
	if e.Kind() == events.DockerDestroy {
		delete(v.containers, k)
		return
	}
	c := v.containers[k]
	if c == nil {
		c = &Container{ID: d.ContainerID, Host: d.Host, Restarts: []Restart{}}
		v.containers[k] = c
	}
	if d.Container != "" {
		c.Name = d.Container
	}
	if d.Image != "" {
		c.Image = d.Image
	}
	t := e.Time
	c.LastEvent, c.LastEventTime = string(e.Kind()), &t
	switch e.Kind() {
	case events.DockerUnhealthy:
		c.Health = "unhealthy"
	case events.DockerHealthy:
		c.Health = "healthy"
	case events.DockerStart:
		c.State = "running"
	case events.DockerDie:
		c.State = "exited"
	case events.RestartRequested:
		c.RestartsInFrame, c.FrameStart, c.GivenUp = d.FrameRestarts, d.FrameStart, false
	case events.RestartSucceeded, events.RestartFailed:
		c.Restarts = append(c.Restarts, Restart{Time: e.Time, OK: e.Kind() == events.RestartSucceeded, Reason: d.Reason})
	case events.GaveUp:
		c.GivenUp = true
	}
}

// Snapshot is the view at now: containers by name, their restarts within
// Window, and the last limit events, newest first.
type Snapshot struct {
	Containers []Container    `json:"containers"`
	Events     []events.Event `json:"events"`
}

// Snapshot copies the view out.
func (v *View) Snapshot(now time.Time, limit int) Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Snapshot{Containers: []Container{}, Events: []events.Event{}}
	cut := now.Add(-Window)
	for _, c := range v.containers {
		i := sort.Search(len(c.Restarts), func(i int) bool { return !c.Restarts[i].Time.Before(cut) })
		c.Restarts = c.Restarts[i:]
		cc := *c
		cc.Restarts = slices.Clone(c.Restarts)
		s.Containers = append(s.Containers, cc)
	}
	sort.Slice(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Name < b.Name
	})
	for i := len(v.recent) - 1; i >= 0 && len(s.Events) < limit; i-- {
		s.Events = append(s.Events, v.recent[i])
	}
	return s
}
