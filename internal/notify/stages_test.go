package notify

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
)

// The routing table gives each container the destination of the route
// that saw it last, on its host or on any, and forgets deleted routes.
func TestRoutingLookup(t *testing.T) {
	rt := func(key, url string, seen map[string]int64, levels map[string]string) Route {
		return RouteFromValue(key, bus.RouteValue{URL: url, Containers: seen, Levels: levels})
	}
	for _, c := range []struct {
		name            string
		routes          []Route
		host, container string
		want            Destination
	}{
		{"no route: the default targets at their level", nil, "h", "web", Destination{}},
		{"its own target and level", []Route{rt("notify-a", "https://a/", map[string]int64{"web": 1}, map[string]string{"web": "debug"})},
			"h", "web", Destination{Target: "notify-a", Level: "debug"}},
		{"another container's route", []Route{rt("notify-a", "https://a/", map[string]int64{"api": 1}, nil)}, "h", "web", Destination{}},
		{"a level alone: the default targets at it", []Route{rt(bus.DefaultTargetsKey, "", map[string]int64{"web": 1}, map[string]string{"web": "warning"})},
			"h", "web", Destination{Level: "warning"}},
		{"named by two: the newer wins", []Route{
			rt("notify-a", "https://a/", map[string]int64{"web": 5}, nil),
			rt("notify-b", "https://b/", map[string]int64{"web": 9}, map[string]string{"web": "info"}),
		}, "h", "web", Destination{Target: "notify-b", Level: "info"}},
		{"a deleted route is forgotten", []Route{
			rt("notify-a", "https://a/", map[string]int64{"web": 5}, nil),
			{ID: "notify-a", Deleted: true},
		}, "h", "web", Destination{}},
		{"a route stored again replaces the old", []Route{
			rt("notify-a", "https://a/", map[string]int64{"web": 5}, map[string]string{"web": "debug"}),
			rt("notify-a", "https://a/", map[string]int64{"api": 5}, nil),
		}, "h", "web", Destination{}},
		{"a hub's route of this host, by its bare id", []Route{rt("host-a.notify-a", "https://a/", map[string]int64{"web": 1}, nil)},
			"host-a", "web", Destination{Target: "notify-a"}},
		{"a hub's route of another host", []Route{rt("host-b.notify-a", "https://a/", map[string]int64{"web": 1}, nil)},
			"host-a", "web", Destination{}},
		{"names as subjects have them", []Route{rt("notify-a", "https://a/", map[string]int64{"app.web.1": 1}, nil)},
			"h", "/app.web.1", Destination{Target: "notify-a"}},
		{"an event of no container", []Route{rt("notify-a", "https://a/", map[string]int64{"_": 1}, nil)}, "h", "", Destination{}},
	} {
		r := NewRouting()
		for _, rt := range c.routes {
			r.Apply(rt)
		}
		if got := r.Lookup(c.host, c.container, ""); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// Events of an older healer carry their destination; the rest are looked
// up.
func TestDestination(t *testing.T) {
	routing := NewRouting()
	routing.Apply(RouteFromValue("notify-a", bus.RouteValue{URL: "https://a/", Containers: map[string]int64{"web": 1}}))
	ev := func(d events.Data) events.Event {
		d.Host = "h"
		return events.New(events.RestartSucceeded, "x", time.Now(), "web", d)
	}
	for _, c := range []struct {
		name string
		e    events.Event
		want Destination
	}{
		{"looked up", ev(events.Data{}), Destination{Target: "notify-a"}},
		{"stamped by an older healer", ev(events.Data{NotifyTarget: "notify-b", NotifyLevel: "info"}), Destination{Target: "notify-b", Level: "info"}},
		{"a level stamped alone", ev(events.Data{NotifyLevel: "debug"}), Destination{Level: "debug"}},
		{"the cleaner's: the default targets", events.New(events.CleanupRemoved, "y", time.Now(), "web", events.Data{Host: "h", Canonical: "web"}), Destination{}},
		{"the cleaner's failure too", events.New(events.CleanupFailed, "z", time.Now(), "web", events.Data{Host: "h", Error: "busy"}), Destination{}},
	} {
		if got := destination(c.e, routing); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestRecipientLevel(t *testing.T) {
	def := recipient{ID: "notify-a", Default: true, Level: Warning}
	own := recipient{ID: "notify-b", Level: Info}
	type out struct {
		Level Level
		OK    bool
	}
	for _, c := range []struct {
		name string
		r    recipient
		d    Destination
		want out
	}{
		{"default, at its level", def, Destination{}, out{Warning, true}},
		{"default, at the container's", def, Destination{Level: "debug"}, out{Debug, true}},
		{"default, a bad level is the target's", def, Destination{Level: "loud"}, out{Warning, true}},
		{"default leaves another target's", def, Destination{Target: "notify-b"}, out{}},
		{"default takes one naming it", def, Destination{Target: "notify-a"}, out{Warning, true}},
		{"own takes its own", own, Destination{Target: "notify-b", Level: "debug"}, out{Debug, true}},
		{"own leaves the default's", own, Destination{Level: "debug"}, out{}},
	} {
		l, ok := c.r.level(c.d)
		if got := (out{l, ok}); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// planBatch decodes a group, drops what was told before a consumer was
// made again, and keeps what the target takes, with the group's end as
// the new position.
func TestPlanBatch(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).UTC()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	restarted := events.New(events.RestartSucceeded, "a", t0, "web", events.Data{Host: "h"})
	observed := events.New(events.DockerDie, "b", t0, "web", events.Data{Host: "h"})
	msg := func(e events.Event, seq, delivered uint64) received {
		b, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return received{Subject: e.NATSSubject(), Data: b, Meta: true, Seq: seq, Time: at(int(seq)), Delivered: delivered}
	}
	takes := func(e events.Event) bool { return e.Kind() == events.RestartSucceeded }
	for _, c := range []struct {
		name         string
		msgs         []received
		pos          uint64
		want         batch
		undecodables int
	}{
		{"kept and dropped", []received{msg(restarted, 1, 1), msg(observed, 2, 1)}, 0,
			batch{Wanted: []events.Event{restarted}, Pos: 2, PosTime: at(2)}, 0},
		{"told before the consumer was made again", []received{msg(restarted, 4, 1), msg(restarted, 5, 1), msg(restarted, 6, 1)}, 5,
			batch{Wanted: []events.Event{restarted}, Stale: 2, Pos: 6, PosTime: at(6)}, 0},
		{"handed out again, not told", []received{msg(restarted, 5, 2)}, 5,
			batch{Wanted: []events.Event{restarted}, Pos: 5, PosTime: at(0)}, 0},
		{"not an event", []received{{Subject: "hmd.h.web.x", Data: []byte("{"), Meta: true, Seq: 7, Time: at(7), Delivered: 1}}, 0,
			batch{Pos: 7, PosTime: at(7)}, 1},
	} {
		got := planBatch(c.msgs, c.pos, at(0), takes)
		if len(got.Undecodable) != c.undecodables {
			t.Errorf("%s: undecodable %v, want %d", c.name, got.Undecodable, c.undecodables)
		}
		got.Undecodable = nil
		for i := range got.Wanted {
			got.Wanted[i].Time = got.Wanted[i].Time.UTC()
		}
		want := c.want
		for i := range want.Wanted {
			want.Wanted[i].Time = want.Wanted[i].Time.UTC()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
	}
}

// compose escapes and renders; a template that fails still tells the
// kinds, escaped.
func TestCompose(t *testing.T) {
	good, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ParseTemplate(`{{range .Events}}{{.Data.NoSuchField}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	evs := []events.Event{events.New(events.RestartSucceeded, "x", time.Now(), "<web>", events.Data{Host: "h", Reason: "@here"})}
	for _, c := range []struct {
		name    string
		tmpl    *template.Template
		esc     Escape
		want    string
		wantErr bool
	}{
		{"rendered, Slack", good, EscapeSlack, "[h] &lt;web&gt;: restarted (@\u200dhere)", false},
		{"rendered, plain", good, EscapePlain, "[h] <web>: restarted (@\u200dhere)", false},
		{"fallback", bad, EscapeSlack, "h &lt;web&gt;: outcome.restart_succeeded\n", true},
	} {
		got, err := compose(c.tmpl, evs, c.esc)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: %q, %v; want %q, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}

// judge counts each attempt and says what is retried: a refusal is not.
func TestJudge(t *testing.T) {
	boom := errors.New("boom")
	type out struct {
		Result    string
		Retried   bool
		Permanent bool
	}
	for _, c := range []struct {
		name  string
		retry bool
		err   error
		want  out
	}{
		{"taken", false, nil, out{resultOK, false, false}},
		{"taken, retry set", true, nil, out{resultOK, false, false}},
		{"refused", false, boom, out{resultRefused, true, true}},
		{"failed", true, boom, out{resultError, true, false}},
	} {
		result, err := judge(c.retry, c.err)
		var perm *backoff.PermanentError
		got := out{result, err != nil, errors.As(err, &perm)}
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		if err != nil && !errors.Is(err, boom) {
			t.Errorf("%s: %v lost the target's error", c.name, err)
		}
	}
}

// The wait between attempts doubles from a second up to the cap, which is
// never under a second.
func TestRetryPolicy(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		max  time.Duration
		want []time.Duration
	}{
		{10 * s, []time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}},
		{0, []time.Duration{s, s, s}},
		{time.Minute, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}},
	} {
		b := retryPolicy(c.max)
		b.Reset()
		var got []time.Duration
		for range c.want {
			got = append(got, b.NextBackOff())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("max %v: %v, want %v", c.max, got, c.want)
		}
	}
}

// CatchUp waits for the routes stored before it was called.
func TestRoutingCatchUp(t *testing.T) {
	r := NewRouting()
	r.latest = func(context.Context) (uint64, error) { return 3, nil }
	go func() {
		time.Sleep(50 * time.Millisecond)
		r.Apply(Route{ID: "notify-a", URL: "https://a/", Containers: []string{"web"}, Revision: 3})
	}()
	r.CatchUp(context.Background(), time.Time{})
	if got := r.Lookup("h", "web", ""); got != (Destination{Target: "notify-a"}) {
		t.Errorf("after CatchUp: %+v", got)
	}
}

// A route stored a little after its container's event (the healer queues
// it first, and it is written on its own way) still routes the event: a
// group is looked up only once its newest event has settled.
func TestRoutingCatchUpWaitsForARouteOnItsWay(t *testing.T) {
	r := NewRouting()
	stored := time.Now()
	var routeStored atomic.Bool
	r.latest = func(context.Context) (uint64, error) {
		if routeStored.Load() {
			return 3, nil
		}
		return 2, nil
	}
	r.Apply(Route{ID: "notify-other", URL: "https://o/", Containers: []string{"api"}, Revision: 2})
	go func() {
		// The fault: the route is written 300 ms after the event.
		time.Sleep(300 * time.Millisecond)
		routeStored.Store(true)
		time.Sleep(20 * time.Millisecond)
		r.Apply(Route{ID: "notify-a", URL: "https://a/", Containers: []string{"web"}, Revision: 3})
	}()
	r.CatchUp(context.Background(), stored)
	if got := r.Lookup("h", "web", ""); got != (Destination{Target: "notify-a"}) {
		t.Errorf("after CatchUp: %+v; the event would go to the default targets", got)
	}
	// Old events (a replay) do not wait for the settle time: the routes
	// are read even with less time left than that.
	var reads atomic.Int32
	r.latest = func(context.Context) (uint64, error) { reads.Add(1); return 3, nil }
	ctx, cancel := context.WithTimeout(context.Background(), routeSettle/2)
	defer cancel()
	r.CatchUp(ctx, stored.Add(-time.Hour))
	if reads.Load() == 0 {
		t.Error("CatchUp on an old group waited for it to settle instead of reading the routes")
	}
}

// A route gives its target the events of the containers that named it,
// by their id: a container that took over a name (the one that had it was
// removed, or recreated with other labels) does not hand the old one's
// events, still in the stream or read again by a new target's look back,
// to its own target, nor its own to the old one's.
func TestRoutingByContainerID(t *testing.T) {
	ids := func(m map[string]string) map[string]bus.RouteID {
		out := map[string]bus.RouteID{}
		for id, name := range m {
			out[id] = bus.RouteID{Name: name, Seen: 1}
		}
		return out
	}
	rt := func(key, url string, names map[string]int64, byID map[string]string) Route {
		return RouteFromValue(key, bus.RouteValue{URL: url, Containers: names, IDs: ids(byID)})
	}
	hostile := rt("notify-evil", "https://evil/", map[string]int64{"db": 9}, map[string]string{"new-db": "db"})
	for _, c := range []struct {
		name   string
		routes []Route
		id     string
		want   Destination
	}{
		{"the container that named it", []Route{hostile}, "new-db", Destination{Target: "notify-evil"}},
		{"the one that had the name before", []Route{hostile}, "old-db", Destination{}},
		{"an event with no container id", []Route{hostile}, "", Destination{}},
		{"recreated with the same labels: both ids", []Route{rt("notify-a", "https://a/", map[string]int64{"db": 9}, map[string]string{"old-db": "db", "new-db": "db"})},
			"old-db", Destination{Target: "notify-a"}},
		{"recreated with another target: each its own", []Route{
			rt("notify-a", "https://a/", map[string]int64{"db": 5}, map[string]string{"old-db": "db"}),
			hostile,
		}, "old-db", Destination{Target: "notify-a"}},
		{"an id under another name is not this one's", []Route{rt("notify-a", "https://a/", map[string]int64{"db": 5, "api": 5}, map[string]string{"new-db": "db", "old-db": "api"})},
			"old-db", Destination{}},
		{"a name with no ids (stored by an older healer): by name", []Route{rt("notify-a", "https://a/", map[string]int64{"db": 5}, nil)},
			"old-db", Destination{Target: "notify-a"}},
	} {
		r := NewRouting()
		for _, rt := range c.routes {
			r.Apply(rt)
		}
		e := events.New(events.GaveUp, "x", time.Now(), "db", events.Data{Host: "h", ContainerID: c.id})
		if got := destination(e, r); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// What planBatch says of a message that is not an event is bounded: the
// decoder quotes its id and version, which a publisher can make as large
// as a message, and every runner logs it.
func TestPlanBatchBoundsWhatItSaysOfAMessage(t *testing.T) {
	data := []byte(`{"specversion":"0.1","id":"` + strings.Repeat("x", 512<<10) + `"}`)
	got := planBatch([]received{{Subject: "hmd.h.web.x", Data: data}}, 0, time.Time{}, func(events.Event) bool { return true })
	if len(got.Undecodable) != 1 {
		t.Fatalf("undecodable: %d, want 1", len(got.Undecodable))
	}
	if s := got.Undecodable[0].Error(); len(s) > 2048 || !strings.Contains(s, "hmd.h.web.x") {
		t.Errorf("said of it: %d bytes (want at most 2 KB, naming the subject): %.200s", len(s), s)
	}
}

// Container names that subjects spell alike (x.y and x_y) and name one
// route are both its: the table keys them as subjects do, and the second
// must not take the first's place, ids and all.
func TestRoutingKeepsBothNamesThatSubjectsSpellAlike(t *testing.T) {
	r := NewRouting()
	r.Apply(RouteFromValue("notify-a", bus.RouteValue{URL: "https://a/", Containers: map[string]int64{"x.y": 1, "x_y": 2},
		Levels: map[string]string{"x.y": "debug"},
		IDs:    map[string]bus.RouteID{"c1": {Name: "x.y", Seen: 1}, "c2": {Name: "x_y", Seen: 2}}}))
	for _, c := range []struct{ name, id string }{{"x.y", "c1"}, {"x_y", "c2"}} {
		if got := r.Lookup("h", c.name, c.id); got.Target != "notify-a" {
			t.Errorf("%s (%s): %+v, want its route's target", c.name, c.id, got)
		}
	}
	if got := r.Lookup("h", "x.y", "c3"); got != (Destination{}) {
		t.Errorf("another container under the name: %+v, want the default targets", got)
	}
}
