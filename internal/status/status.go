// Package status owns the healer's view of its containers for people: a
// projection of the event stream (restarts in the frame, given up, the
// restarts of the last day, the last events), corrected by a listing of
// the containers when the healer connects and reconciles, that the status
// endpoint and page read. Serving it costs the Docker daemon nothing.
package status

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unique"

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
	// Paused for maintenance (healer pause), until PausedUntil if set.
	Paused        bool       `json:"paused,omitempty"`
	PausedUntil   *time.Time `json:"paused_until,omitempty"`
	PauseReason   string     `json:"pause_reason,omitempty"`
	Restarts      []Restart  `json:"restarts"`
	LastEvent     string     `json:"last_event,omitempty"`
	LastEventTime *time.Time `json:"last_event_time,omitempty"`
	// Parent is the container whose network this one shares (or, from
	// the healer's events, the compose service it follows); Dependents
	// are the containers whose parent this one is.
	Parent     string   `json:"parent,omitempty"`
	Dependents []string `json:"dependents,omitempty"`
}

// entry is one container in the view. It is kept small: a host watches
// thousands of containers.
type entry struct {
	id, name, host, image string
	state, health         string
	lastEvent             events.Kind
	lastEventTime         time.Time
	frameStart            time.Time
	restartsInFrame       int32
	givenUp               bool
	// pause is the latest control.paused, nil when not paused.
	pause *pause
	// listed: the latest listing of its host had it, or an event newer
	// than that listing was about it.
	listed   bool
	restarts []Restart
	// parent is the id or name of the container whose network it shares,
	// or the parent the healer's latest event about it named.
	parent string
}

type key struct{ host, id string }

// View is the projection. Its methods may be called concurrently.
type View struct {
	mu         sync.Mutex
	containers map[key]*entry
	// listedAt is, per host, the time of its latest listing: events older
	// than it do not overrule what the listing said.
	listedAt map[string]time.Time
	// recent is a ring of the last maxEvents events; next is where the
	// next one goes.
	recent []events.Event
	next   int
	// version counts the changes, so readers can tell a copy is current.
	version uint64
}

// NewView returns an empty view.
func NewView() *View {
	return &View{containers: map[key]*entry{}, listedAt: map[string]time.Time{}}
}

// intern returns one shared copy of s: image names, hosts and reasons
// repeat across thousands of containers and events.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// Apply folds one event into the view.
func (v *View) Apply(e events.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	if len(v.recent) < maxEvents {
		v.recent = append(v.recent, e)
	} else {
		v.recent[v.next] = e
	}
	v.next = (v.next + 1) % maxEvents
	d := e.Data
	if d.ContainerID == "" {
		return
	}
	k := key{d.Host, d.ContainerID}
	if e.Kind() == events.DockerDestroy {
		delete(v.containers, k)
		return
	}
	c := v.containers[k]
	if c == nil {
		k.host = intern(k.host)
		c = &entry{id: d.ContainerID, host: k.host}
		v.containers[k] = c
	}
	listed, seen := v.listedAt[d.Host]
	// An event older than the host's latest listing is history: it adds
	// to the timeline but the listing knows the state better.
	current := !seen || !e.Time.Before(listed)
	if current {
		c.listed = true
	}
	if d.Container != "" && (current || c.name == "") {
		c.name = d.Container
	}
	if d.Image != "" && (current || c.image == "") {
		c.image = intern(d.Image)
	}
	if current || c.lastEventTime.IsZero() {
		c.lastEvent, c.lastEventTime = e.Kind(), e.Time
	}
	if d.Parent != "" && current {
		c.parent = intern(d.Parent)
	}
	switch e.Kind() {
	case events.DockerUnhealthy:
		if current {
			c.health = "unhealthy"
		}
	case events.DockerHealthy:
		if current {
			c.health = "healthy"
		}
	case events.DockerStart:
		if current {
			c.state = "running"
		}
	case events.DockerDie:
		if current {
			c.state = "exited"
		}
	case events.RestartRequested:
		c.restartsInFrame, c.givenUp = int32(d.FrameRestarts), false
		c.frameStart = time.Time{}
		if d.FrameStart != nil {
			c.frameStart = *d.FrameStart
		}
	case events.RestartSucceeded, events.RestartFailed:
		c.restarts = append(c.restarts, Restart{Time: e.Time, OK: e.Kind() == events.RestartSucceeded, Reason: intern(d.Reason)})
		c.pruneRestarts(e.Time)
	case events.GaveUp:
		c.givenUp = true
	case events.ControlPaused:
		c.pause = &pause{reason: d.Reason}
		if d.Until != nil {
			c.pause.until = *d.Until
		}
	case events.ControlResumed:
		c.pause = nil
	}
}

// pause is a container's pause for maintenance.
type pause struct {
	until  time.Time
	reason string
}

// Listed is one container as a listing of the daemon shows it.
type Listed struct {
	ID, Name, Image, State, Health string
	// NetworkMode, such as container:<id>, names a network parent.
	NetworkMode string
}

// List folds in a listing of host's watched containers, taken at: the
// containers it holds are there with the state it shows (unless an event
// newer than the listing said otherwise), and the others are gone.
func (v *View) List(host string, at time.Time, cs []Listed) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	host = intern(host)
	v.listedAt[host] = at
	in := make(map[string]struct{}, len(cs))
	for _, l := range cs {
		in[l.ID] = struct{}{}
		k := key{host, l.ID}
		c := v.containers[k]
		if c == nil {
			c = &entry{id: l.ID, host: host}
			v.containers[k] = c
		}
		c.listed = true
		if !c.lastEventTime.After(at) {
			c.name, c.image, c.state, c.health = l.Name, intern(l.Image), l.State, l.Health
		}
		if ref, ok := strings.CutPrefix(l.NetworkMode, "container:"); ok {
			c.parent = ref
		}
	}
	for k, c := range v.containers {
		if _, ok := in[k.id]; k.host == host && !ok && !c.lastEventTime.After(at) {
			c.pruneRestarts(at)
			if len(c.restarts) == 0 {
				delete(v.containers, k)
			} else {
				// Its restarts stay until an event says it is gone, so a
				// listing that races its recreation loses nothing.
				c.listed = false
			}
		}
	}
}

// Version changes whenever the view does.
func (v *View) Version() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.version
}

// Snapshot is the view at now: containers by name, their restarts within
// Window, and the last limit events, newest first.
type Snapshot struct {
	Containers []Container    `json:"containers"`
	Events     []events.Event `json:"events"`
}

// Snapshot copies the view out: the containers of every host that are
// there now. It changes nothing.
func (v *View) Snapshot(now time.Time, limit int) Snapshot { return v.SnapshotOf("", now, limit) }

// SnapshotOf is Snapshot for the containers of one host ("" for all).
func (v *View) SnapshotOf(host string, now time.Time, limit int) Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Snapshot{Containers: make([]Container, 0, len(v.containers)), Events: []events.Event{}}
	for k, c := range v.containers {
		if (host != "" && k.host != host) || !c.listed {
			continue
		}
		out := Container{ID: c.id, Name: c.name, Host: c.host, Image: c.image, State: c.state, Health: c.health,
			RestartsInFrame: int(c.restartsInFrame), GivenUp: c.givenUp, Restarts: slices.Clone(c.restarts[c.firstRestartSince(now):]), LastEvent: string(c.lastEvent)}
		if out.Restarts == nil {
			out.Restarts = []Restart{}
		}
		if p := c.pause; p != nil && (p.until.IsZero() || now.Before(p.until)) {
			out.Paused, out.PauseReason = true, p.reason
			if !p.until.IsZero() {
				u := p.until
				out.PausedUntil = &u
			}
		}
		if !c.frameStart.IsZero() {
			fs := c.frameStart
			out.FrameStart = &fs
		}
		if !c.lastEventTime.IsZero() {
			t := c.lastEventTime
			out.LastEventTime = &t
		}
		out.Parent = c.parent
		s.Containers = append(s.Containers, out)
	}
	linkParents(s.Containers)
	sort.Slice(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Name < b.Name
	})
	for i := 1; i <= len(v.recent) && len(s.Events) < limit; i++ {
		s.Events = append(s.Events, v.recent[(v.next-i+len(v.recent))%len(v.recent)])
	}
	return s
}

// firstRestartSince is the index of the first restart within Window
// before now.
func (c *entry) firstRestartSince(now time.Time) int {
	cut := now.Add(-Window)
	return sort.Search(len(c.restarts), func(i int) bool { return !c.restarts[i].Time.Before(cut) })
}

// pruneRestarts drops the restarts that left the timeline by now, so that
// memory holds a day of them: pruned as events and listings come, never by
// a reader.
func (c *entry) pruneRestarts(now time.Time) {
	if i := c.firstRestartSince(now); i > 0 {
		c.restarts = slices.Clone(c.restarts[i:])
	}
}

// linkParents turns each container's parent reference (an id, a short id
// or a name) into the parent's name, and lists each one's dependents, per
// host.
func linkParents(cs []Container) {
	type hk struct{ host, ref string }
	byRef := map[hk]int{}
	for i, c := range cs {
		byRef[hk{c.Host, c.ID}] = i
		byRef[hk{c.Host, events.ShortID(c.ID)}] = i
		byRef[hk{c.Host, c.Name}] = i
	}
	for i := range cs {
		if cs[i].Parent == "" {
			continue
		}
		p, ok := byRef[hk{cs[i].Host, cs[i].Parent}]
		if !ok {
			p, ok = byRef[hk{cs[i].Host, events.ShortID(cs[i].Parent)}]
		}
		if !ok {
			if len(cs[i].Parent) == 64 {
				// A removed parent's id: shown short.
				cs[i].Parent = events.ShortID(cs[i].Parent)
			}
			continue
		}
		cs[i].Parent = cs[p].Name
		cs[p].Dependents = append(cs[p].Dependents, cs[i].Name)
	}
	for i := range cs {
		slices.Sort(cs[i].Dependents)
	}
}
