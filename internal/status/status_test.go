package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

func TestView(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fs := now.Add(-time.Minute)
	ev := func(k events.Kind, at time.Duration, id string, d events.Data) events.Event {
		d.Host, d.ContainerID = "h", id
		if id != "" {
			d.Container = "web-" + id
		}
		return events.New(k, string(k)+id+at.String(), now.Add(at), d.Container, d)
	}
	tests := []struct {
		name   string
		events []events.Event
		want   map[string]Container // by id: only the fields checked
		feed   int
	}{
		{"restart counts and health", []events.Event{
			ev(events.DockerUnhealthy, -3*time.Minute, "a", events.Data{}),
			ev(events.RestartRequested, -3*time.Minute, "a", events.Data{FrameRestarts: 2, FrameStart: &fs}),
			ev(events.RestartSucceeded, -3*time.Minute, "a", events.Data{Reason: "health_status: unhealthy"}),
			ev(events.DockerStart, -3*time.Minute, "a", events.Data{}),
			ev(events.DockerHealthy, -2*time.Minute, "a", events.Data{}),
		}, map[string]Container{"a": {Name: "web-a", Health: "healthy", State: "running", RestartsInFrame: 2, Restarts: []Restart{{OK: true}}}}, 5},
		{"restarts older than a day leave the timeline", []events.Event{
			ev(events.RestartFailed, -25*time.Hour, "a", events.Data{Error: "boom"}),
			ev(events.RestartSucceeded, -23*time.Hour, "a", events.Data{}),
		}, map[string]Container{"a": {Name: "web-a", Restarts: []Restart{{OK: true}}}}, 2},
		{"given up until the next restart", []events.Event{
			ev(events.GaveUp, -time.Hour, "a", events.Data{}),
			ev(events.GaveUp, -time.Hour, "b", events.Data{}),
			ev(events.RestartRequested, -time.Minute, "b", events.Data{FrameRestarts: 1}),
		}, map[string]Container{"a": {Name: "web-a", GivenUp: true}, "b": {Name: "web-b", RestartsInFrame: 1}}, 3},
		{"destroyed containers go, healer events only feed", []events.Event{
			ev(events.DockerStart, -time.Hour, "a", events.Data{}),
			ev(events.DockerDestroy, -time.Minute, "a", events.Data{}),
			ev(events.DockerLost, -time.Minute, "", events.Data{Error: "socket gone"}),
		}, map[string]Container{}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := NewView()
			for _, e := range tt.events {
				v.Apply(e)
			}
			s := v.Snapshot(now, 100)
			if len(s.Containers) != len(tt.want) {
				t.Fatalf("got %d containers, want %d: %+v", len(s.Containers), len(tt.want), s.Containers)
			}
			for _, c := range s.Containers {
				w, ok := tt.want[c.ID]
				if !ok {
					t.Fatalf("unexpected container %s", c.ID)
				}
				if c.Name != w.Name || c.Health != w.Health || c.State != w.State || c.RestartsInFrame != w.RestartsInFrame || c.GivenUp != w.GivenUp || len(c.Restarts) != len(w.Restarts) {
					t.Errorf("%s = %+v, want %+v", c.ID, c, w)
				}
				for i := range w.Restarts {
					if c.Restarts[i].OK != w.Restarts[i].OK {
						t.Errorf("%s restart %d ok = %v", c.ID, i, c.Restarts[i].OK)
					}
				}
			}
			if len(s.Events) != tt.feed {
				t.Errorf("feed has %d events, want %d", len(s.Events), tt.feed)
			}
			if len(s.Events) > 1 && s.Events[0].Time.Before(s.Events[len(s.Events)-1].Time) {
				t.Errorf("feed is not newest first")
			}
			if lim := v.Snapshot(now, 1); len(lim.Events) > 1 {
				t.Errorf("limit 1 gave %d events", len(lim.Events))
			}
		})
	}
}

// A listing says what is there; events older than it are history, newer
// ones overrule it; a container it lacks is gone.
func TestViewList(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ev := func(k events.Kind, at time.Duration, id string) events.Event {
		d := events.Data{Host: "h", ContainerID: id, Container: "web-" + id}
		return events.New(k, string(k)+id+at.String(), now.Add(at), d.Container, d)
	}
	v := NewView()
	// Replayed history arrives after the listing: a container destroyed
	// while the healer was down, and an old death of a running one.
	v.List("h", now, []Listed{{ID: "a", Name: "web-a", State: "running", Health: "healthy"}, {ID: "b", Name: "web-b", State: "running"}})
	v.Apply(ev(events.DockerStart, -2*time.Hour, "gone"))
	v.Apply(ev(events.DockerDie, -time.Hour, "a"))
	v.Apply(ev(events.RestartSucceeded, -time.Hour, "a"))
	// Live events after the listing.
	v.Apply(ev(events.DockerUnhealthy, time.Second, "a"))
	v.Apply(ev(events.DockerStart, time.Second, "c"))
	v.Apply(ev(events.DockerDestroy, time.Second, "b"))
	got := map[string]string{}
	for _, c := range v.SnapshotOf("h", now.Add(time.Minute), 0).Containers {
		got[c.ID] = c.State + "/" + c.Health + "/" + fmt.Sprint(len(c.Restarts))
	}
	want := map[string]string{"a": "running/unhealthy/1", "c": "running//0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A later listing without c removes it.
	v.List("h", now.Add(time.Minute), []Listed{{ID: "a", Name: "web-a", State: "exited"}})
	s := v.SnapshotOf("h", now.Add(time.Minute), 0)
	if len(s.Containers) != 1 || s.Containers[0].ID != "a" || s.Containers[0].State != "exited" {
		t.Errorf("after the second listing: %+v", s.Containers)
	}
	if other := v.SnapshotOf("elsewhere", now, 0); len(other.Containers) != 0 {
		t.Errorf("another host's snapshot: %+v", other.Containers)
	}
}

// Each container shows its network parent by name and its dependents,
// from the listing, and a dependent the healer acted on names its parent.
func TestParentsAndDependents(t *testing.T) {
	t.Parallel()
	v := NewView()
	at := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	vpnID := "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000"
	v.List("h1", at, []Listed{
		{ID: vpnID, Name: "vpn", State: "running"},
		{ID: "b1", Name: "torrent", State: "running", NetworkMode: "container:" + vpnID},
		{ID: "c1", Name: "web", State: "running", NetworkMode: "container:vpn"},
		{ID: "d1", Name: "old", State: "exited", NetworkMode: "container:ffffffffffff0000000000000000000000000000000000000000000000000000"},
		{ID: "e1", Name: "api", State: "running"},
	})
	v.Apply(events.New(events.RestartSucceeded, "x", at.Add(time.Second), "api", events.Data{Host: "h1", ContainerID: "e1", Container: "api", Parent: "web"}))
	got := map[string]Container{}
	for _, c := range v.Snapshot(at.Add(2*time.Second), 0).Containers {
		got[c.Name] = c
	}
	want := map[string][2]string{
		"vpn": {"", "torrent,web"}, "torrent": {"vpn", ""}, "web": {"vpn", "api"}, "old": {"ffffffffffff", ""}, "api": {"web", ""},
	}
	for name, w := range want {
		c := got[name]
		if c.Parent != w[0] || strings.Join(c.Dependents, ",") != w[1] {
			t.Errorf("%s: parent %q dependents %q, want %q and %q", name, c.Parent, c.Dependents, w[0], w[1])
		}
	}
}

// Snapshot only reads: a restart that left one snapshot's timeline is
// still in the view for an earlier one. Memory is pruned by the events and
// listings instead: a listing drops a gone container whose restarts all
// left the timeline.
func TestSnapshotChangesNothing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	v := NewView()
	v.Apply(events.New(events.RestartSucceeded, "r", now.Add(-23*time.Hour), "web", events.Data{Host: "h", ContainerID: "a", Container: "web"}))
	version := v.Version()
	if got := v.Snapshot(now.Add(2*time.Hour), 0).Containers; len(got) != 1 || len(got[0].Restarts) != 0 {
		t.Fatalf("a day later: %+v, want the container without restarts", got)
	}
	if got := v.Snapshot(now, 0).Containers; len(got) != 1 || len(got[0].Restarts) != 1 {
		t.Errorf("after a later snapshot: %+v, want its restart still there", got)
	}
	if v.Version() != version {
		t.Errorf("version %d after snapshots, want %d", v.Version(), version)
	}
	v.List("h", now, nil)
	if got := v.SnapshotOf("h", now, 0).Containers; len(got) != 0 {
		t.Errorf("listed without it within the day: %+v, want it hidden", got)
	}
	v.List("h", now.Add(2*time.Hour), nil)
	v.mu.Lock()
	n := len(v.containers)
	v.mu.Unlock()
	if n != 0 {
		t.Errorf("%d containers kept after a listing without it a day after its restart, want 0", n)
	}
}
