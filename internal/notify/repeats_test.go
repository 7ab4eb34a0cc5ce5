package notify

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// A bug hit again and again is told once an hour per part; every other
// event, and another part's bug, goes through.
func TestRepeatsHoldBackABugToldAlready(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	bug := func(id, host, where string) events.Event {
		return events.New(events.HealerPanic, id, at, "", events.Data{Host: host, Reason: where, Error: "index out of range " + id})
	}
	restart := events.New(events.RestartSucceeded, "r1", at, "web", events.Data{Host: "h1"})
	var r repeats
	for _, step := range []struct {
		name string
		now  time.Time
		in   []events.Event
		want []events.Event
		held int
	}{
		{"first told, its repeat in the group held", at, []events.Event{bug("1", "h1", "sink"), restart, bug("2", "h1", "sink")}, []events.Event{bug("1", "h1", "sink"), restart}, 1},
		{"held within the hour", at.Add(59 * time.Minute), []events.Event{bug("3", "h1", "sink")}, []events.Event{}, 1},
		{"another part, another host: told", at.Add(59 * time.Minute), []events.Event{bug("4", "h1", "cleaner sweep"), bug("5", "h2", "sink")}, []events.Event{bug("4", "h1", "cleaner sweep"), bug("5", "h2", "sink")}, 0},
		{"told again after the hour", at.Add(61 * time.Minute), []events.Event{bug("6", "h1", "sink")}, []events.Event{bug("6", "h1", "sink")}, 0},
	} {
		got, held, parts := r.keep(step.in, step.now)
		r.mark(parts, step.now)
		if !reflect.DeepEqual(got, step.want) || held != step.held {
			t.Errorf("%s: kept %v, held %d; want %v, %d", step.name, ids(got), held, ids(step.want), step.held)
		}
	}
}

// A group handed back (the runner stopped before the target had it) is
// told in full the next time: keep alone remembers nothing.
func TestRepeatsRememberOnlyWhatWasTold(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	bug := events.New(events.HealerPanic, "1", at, "", events.Data{Host: "h1", Reason: "sink"})
	var r repeats
	r.keep([]events.Event{bug}, at)
	if got, held, _ := r.keep([]events.Event{bug}, at); len(got) != 1 || held != 0 {
		t.Errorf("after a group handed back: kept %d, held %d; want it told", len(got), held)
	}
}

// The memory is bounded: past maxPanicsKept parts it forgets the oldest
// first (here all are recent, so all).
func TestRepeatsAreBounded(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	var r repeats
	for i := range maxPanicsKept + 5 {
		_, _, parts := r.keep([]events.Event{events.New(events.HealerPanic, "x", at, "", events.Data{Host: "h", Reason: time.Duration(i).String()})}, at)
		r.mark(parts, at)
		if len(r.told) > maxPanicsKept {
			t.Fatalf("%d parts remembered, bound %d", len(r.told), maxPanicsKept)
		}
	}
}

func ids(evs []events.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// The memory is bounded in bytes too: a healer.panic's Reason comes from
// the stream, and a compromised host can make each one a distinct
// near-megabyte; a thousand kept whole would be a gigabyte per runner.
func TestRepeatsBoundTheBytesTheyHold(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	var r repeats
	for i := range 50 {
		big := strings.Repeat("x", 64<<10) + time.Duration(i).String()
		bug := events.New(events.HealerPanic, "x", at, "", events.Data{Host: strings.Repeat("h", 64<<10), Reason: big})
		_, _, parts := r.keep([]events.Event{bug}, at)
		r.mark(parts, at)
		if got, _, _ := r.keep([]events.Event{bug}, at); len(got) != 0 {
			t.Fatal("a bug told is told again within the hour")
		}
	}
	held := 0
	for k := range r.told {
		held += len(k)
	}
	if held > 50*256 {
		t.Errorf("%d parts hold %d bytes of keys; want them bounded, not the reasons whole", len(r.told), held)
	}
}
