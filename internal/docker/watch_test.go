package docker

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

type sink struct{ log *waitlog.Log[hmd.Observed] }

func newSink() *sink { return &sink{log: waitlog.New[hmd.Observed]()} }

func (s *sink) put(o hmd.Observed) { s.log.Add(o) }

// waitN returns the first n observations once there are n.
func (s *sink) waitN(t *testing.T, n int) []hmd.Observed {
	t.Helper()
	if _, ok := s.log.WaitNth(10*time.Second, n, func(hmd.Observed) bool { return true }); !ok {
		t.Fatalf("got %d observations, want %d", s.log.Len(), n)
	}
	return s.log.All(func(hmd.Observed) bool { return true })[:n]
}

type status struct {
	mu        sync.Mutex
	connected int
	lost      int
	up        chan struct{}
}

func (s *status) DockerConnected(Info) {
	s.mu.Lock()
	s.connected++
	s.mu.Unlock()
	s.up <- struct{}{}
}

func (s *status) DockerLost(error) {
	s.mu.Lock()
	s.lost++
	s.mu.Unlock()
}

func startWatcher(t *testing.T) (*fakedocker.Server, *sink, *status) {
	t.Helper()
	return startWatcherEvery(t, 0)
}

// fakeClient is a client of a new fake engine, which closes when t ends;
// the caller closes the client.
func fakeClient(t *testing.T) (*fakedocker.Server, *Client) {
	t.Helper()
	fake, err := fakedocker.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	t.Setenv("DOCKER_HOST", fake.Host())
	c, err := NewFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func startWatcherEvery(t *testing.T, reconcile time.Duration) (*fakedocker.Server, *sink, *status) {
	t.Helper()
	fake, c := fakeClient(t)
	fake.Add(fakedocker.Container{ID: "sick0000000000", Name: "sick", Running: true, Health: "unhealthy", Labels: map[string]string{"healme": "true"}})
	fake.Add(fakedocker.Container{ID: "well0000000000", Name: "well", Running: true, Health: "healthy"})
	s, st := newSink(), &status{up: make(chan struct{}, 10)}
	w := NewWatcher(c, s.put, st, time.Hour, slog.New(slog.DiscardHandler))
	w.ReconcileEvery(reconcile)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = c.Close() })
	select {
	case <-st.up:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher never connected")
	}
	return fake, s, st
}

func TestWatcherReconcilesOnConnect(t *testing.T) {
	_, s, _ := startWatcher(t)
	got := s.waitN(t, 1)
	o := got[0]
	if o.ContainerID != "sick0000000000" || o.Kind != hmd.DockerUnhealthy || !o.Reconciled || o.Labels["healme"] != "true" || o.Name != "sick" {
		t.Errorf("reconciled observation %+v", o)
	}
}

func TestWatcherResumesWithoutDuplicatesAndMarksReplays(t *testing.T) {
	fake, s, st := startWatcher(t)
	s.waitN(t, 1) // the reconciled one
	fake.Emit("well0000000000", events.ActionHealthStatusHealthy, nil)
	fake.Emit("well0000000000", events.ActionDie, map[string]string{"exitCode": "3"})
	got := s.waitN(t, 3)
	if got[2].ExitCode == nil || *got[2].ExitCode != 3 || got[2].Replayed {
		t.Errorf("die: %+v", got[2])
	}

	// The stream breaks; an event happens before the watcher is back.
	fake.CutStreams()
	fake.Emit("well0000000000", events.ActionStart, nil)
	select {
	case <-st.up:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher never reconnected")
	}
	fake.Emit("well0000000000", events.ActionKill, map[string]string{"signal": "9"})
	// After the reconnect: the reconcile of the still unhealthy container
	// (it runs beside the stream, so in any order with it), the missed
	// start (replayed), then the live kill; the healthy and die events that
	// since= sends again are dropped. Stream events keep their order.
	got = s.waitN(t, 6)
	var stream []hmd.Observed
	reconciled := 0
	for _, o := range got[3:] {
		if o.Reconciled {
			reconciled++
			if o.Kind != hmd.DockerUnhealthy || o.ContainerID != "sick0000000000" {
				t.Errorf("reconciled %+v, want the unhealthy container", o)
			}
			continue
		}
		stream = append(stream, o)
	}
	if reconciled != 1 || len(stream) != 2 {
		t.Fatalf("after reconnect: %d reconciled and %d streamed, want 1 and 2: %+v", reconciled, len(stream), got[3:])
	}
	start, kill := stream[0], stream[1]
	if start.Kind != hmd.DockerStart || !start.Replayed {
		t.Errorf("first streamed after reconnect: %+v, want the missed start, marked replayed", start)
	}
	if kill.Kind != hmd.DockerKill || kill.Replayed || kill.Signal != "9" {
		t.Errorf("second streamed after reconnect: %+v, want the live kill", kill)
	}
	if n := s.log.Len(); n != 6 {
		t.Errorf("%d observations, want 6: a replayed event was delivered twice", n)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lost != 1 || st.connected != 2 {
		t.Errorf("lost %d, connected %d; want 1 and 2", st.lost, st.connected)
	}
}

// The daemon stamps events before sending them, so under load they arrive
// out of time order; none may be lost for it.
func TestWatcherKeepsEventsThatArriveOutOfTimeOrder(t *testing.T) {
	fake, s, _ := startWatcher(t)
	s.waitN(t, 1)
	now := time.Now()
	fake.EmitAt("well0000000000", events.ActionHealthStatusUnhealthy, nil, now)
	fake.EmitAt("sick0000000000", events.ActionHealthStatusHealthy, nil, now.Add(-time.Millisecond))
	fake.EmitAt("sick0000000000", events.ActionHealthStatusUnhealthy, nil, now.Add(-500*time.Microsecond))
	got := s.waitN(t, 4)
	if got[1].ContainerID != "well0000000000" || got[2].Kind != hmd.DockerHealthy || got[3].Kind != hmd.DockerUnhealthy || got[3].ContainerID != "sick0000000000" {
		t.Errorf("got %+v", got[1:])
	}
}

// convertKinds is what each container action the healer publishes
// becomes, written out here rather than taken from Convert.
var convertKinds = map[events.Action]hmd.Kind{
	events.ActionHealthStatusUnhealthy: hmd.DockerUnhealthy, events.ActionHealthStatusHealthy: hmd.DockerHealthy,
	events.ActionStart: hmd.DockerStart, events.ActionDie: hmd.DockerDie, events.ActionKill: hmd.DockerKill,
	events.ActionStop: hmd.DockerStop, events.ActionOOM: hmd.DockerOOM, events.ActionDestroy: hmd.DockerDestroy,
	events.ActionCreate: hmd.DockerCreate, events.ActionRename: hmd.DockerRename,
}

// The daemon's events are input: any type, action and attributes convert
// without a panic, and the observation says what the message says: the
// action's kind (and nothing for other actions or types), its container,
// name and image, its time, the container's labels (the attributes the
// daemon adds taken out), the exit code of a die and the signal of a kill
// only, and a label named like either marked on any other event.
func FuzzConvert(f *testing.F) {
	f.Add("container", "health_status: unhealthy", "abc123", "web", "img", "0", true, "15", true, "healme", "true", int64(1), int64(0))
	f.Add("container", "die", "abc123", "we.b*>", "img:1", "137", true, "", false, "com.x", "", int64(0), int64(1700000000))
	f.Add("container", "die", "abc123", "web", "", "x", true, "", false, "oldName", "a", int64(5), int64(7))
	f.Add("container", "kill", "", "", "", "x", false, "SIGKILL", true, "signal", "9", int64(1), int64(0))
	f.Add("network", "connect", "id", "n", "", "", false, "", false, "", "", int64(1), int64(0))
	for action := range convertKinds {
		f.Add("container", string(action), "c1", "web", "img", "1", true, "SIGTERM", true, "healme", "true", int64(1), int64(0))
	}
	f.Fuzz(func(t *testing.T, typ, action, id, name, image, exitCode string, hasExit bool, signal string, hasSignal bool, key, value string, nano, sec int64) {
		attrs := map[string]string{"name": name, "image": image, key: value}
		if hasExit {
			attrs["exitCode"] = exitCode
		}
		if hasSignal {
			attrs["signal"] = signal
		}
		m := events.Message{Type: events.Type(typ), Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: maps.Clone(attrs)}, TimeNano: nano, Time: sec}
		o, ok := Convert(m)
		kind, known := convertKinds[m.Action]
		if want := known && m.Type == events.ContainerEventType; ok != want {
			t.Fatalf("Convert(%s %q) ok=%v, want %v", typ, action, ok, want)
		}
		if !maps.Equal(m.Actor.Attributes, attrs) {
			t.Fatalf("Convert changed the message's attributes: %v, was %v", m.Actor.Attributes, attrs)
		}
		if !ok {
			return
		}
		if o.Kind != kind || o.ContainerID != id || o.Name != attrs["name"] || o.Image != attrs["image"] {
			t.Errorf("%q of %q (name %q, image %q) became %s of %q (name %q, image %q)", action, id, attrs["name"], attrs["image"], o.Kind, o.ContainerID, o.Name, o.Image)
		}
		wantTime := nano
		if nano == 0 {
			wantTime = sec * 1e9
		}
		if got := o.DockerTime.UnixNano(); got != wantTime {
			t.Errorf("time %d ns / %d s became %d ns", nano, sec, got)
		}
		labels := maps.Clone(attrs)
		for _, daemon := range []string{"name", "image", "exitCode", "signal", "execDuration", "oldName"} {
			delete(labels, daemon)
		}
		if !maps.Equal(o.Labels, labels) {
			t.Errorf("labels %v, want %v (attributes %v)", o.Labels, labels, attrs)
		}
		code, codeErr := strconv.Atoi(attrs["exitCode"])
		_, exitSet := attrs["exitCode"]
		switch {
		case kind == hmd.DockerDie && exitSet && codeErr == nil:
			if o.ExitCode == nil || *o.ExitCode != code {
				t.Errorf("die with exitCode %q: exit code %v", attrs["exitCode"], o.ExitCode)
			}
		case o.ExitCode != nil:
			t.Errorf("%s with exitCode %q (set %v): exit code %d", kind, attrs["exitCode"], exitSet, *o.ExitCode)
		}
		_, signalSet := attrs["signal"]
		if want := map[bool]string{true: attrs["signal"]}[kind == hmd.DockerKill]; o.Signal != want {
			t.Errorf("%s with signal %q: signal %q, want %q", kind, attrs["signal"], o.Signal, want)
		}
		var ambiguous []string
		if exitSet && kind != hmd.DockerDie {
			ambiguous = append(ambiguous, "exitCode")
		}
		if signalSet && kind != hmd.DockerKill {
			ambiguous = append(ambiguous, "signal")
		}
		if !slices.Equal(o.AmbiguousAttrs, ambiguous) {
			t.Errorf("%s marks %v as labels a container may fake, want %v", kind, o.AmbiguousAttrs, ambiguous)
		}
	})
}

// The daemon drops events for a consumer that falls behind: the periodic
// reconcile finds an unhealthy container whose event never came, reports
// it once, and leaves alone the one whose event did come.
func TestPeriodicReconcileCatchesDroppedEvents(t *testing.T) {
	fake, s, _ := startWatcherEvery(t, 50*time.Millisecond)
	s.waitN(t, 1)                                 // "sick", at connect
	fake.SetHealth("well0000000000", "unhealthy") // its event is lost
	got := s.waitN(t, 2)[1]
	if got.ContainerID != "well0000000000" || got.Kind != hmd.DockerUnhealthy || !got.Reconciled {
		t.Fatalf("periodic reconcile reported %+v", got)
	}
	// A few more rounds: nothing is reported twice.
	fake.Add(fakedocker.Container{ID: "late0000000000", Name: "late", Running: true, Health: "healthy"})
	fake.Emit("late0000000000", events.ActionHealthStatusUnhealthy, nil)
	third := s.waitN(t, 3)[2]
	if third.ContainerID != "late0000000000" || third.Reconciled {
		t.Fatalf("want the late container's own event, got %+v", third)
	}
	// Several reconcile rounds more: each lists the containers, and one
	// round ends before the next begins.
	lists := fake.Hits(fakedocker.EndpointList)
	testkit.Eventually(t, 10*time.Second, "three more reconcile rounds (rounds so far)", func() (int, bool) {
		n := fake.Hits(fakedocker.EndpointList)
		return n - lists, n >= lists+3
	})
	if n := s.log.Len(); n != 3 {
		t.Errorf("%d observations after more reconcile rounds, want 3: %+v", n, s.log.All(func(hmd.Observed) bool { return true }))
	}
}

// A stream that breaks mid-event, or carries what is not JSON, is a stream
// error: the watcher reconnects, nothing panics, and events flow again.
func TestWatcherSurvivesMalformedStreams(t *testing.T) {
	for _, garbage := range []string{`{"Type":"container","Action":"die","Actor":{"ID":"well`, "not json at all\n", "{}\n{\"Type\":42}\n", "\x00\xff\xfe"} {
		fake, s, st := startWatcher(t)
		n := len(s.waitN(t, 1)) // the reconciled "sick"
		fake.CutWithGarbage([]byte(garbage))
		select {
		case <-st.up:
		case <-time.After(10 * time.Second):
			t.Fatalf("after %q: watcher never reconnected", garbage)
		}
		fake.Emit("well0000000000", events.ActionHealthStatusUnhealthy, nil)
		// Seen by the stream or by the reconcile that follows a reconnect,
		// whichever is first.
		if _, ok := s.log.WaitNth(10*time.Second, 1, func(o hmd.Observed) bool {
			return o.ContainerID == "well0000000000" && o.Kind == hmd.DockerUnhealthy
		}); !ok {
			t.Fatalf("after %q: no event after the reconnect (%d observations)", garbage, s.log.Len()-n)
		}
	}
}

// Labels named exitCode or signal land in the event's attributes: on an
// event that does not carry them they mark the container, and they never
// set what a start or a health event says.
func TestConvertMarksAttributesALabelCanFake(t *testing.T) {
	t.Parallel()
	m := events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "c1", Attributes: map[string]string{
		"name": "web", "image": "img", "exitCode": "0", "signal": "SIGTERM", "healme": "true",
	}}, TimeNano: 1}
	o, ok := Convert(m)
	if !ok || o.ExitCode != nil || o.Signal != "" || len(o.AmbiguousAttrs) != 2 || o.Labels["healme"] != "true" {
		t.Errorf("start with exitCode and signal labels: %+v", o)
	}
	m.Action = events.ActionDie
	m.Actor.Attributes = map[string]string{"name": "web", "exitCode": "3"}
	if o, _ := Convert(m); o.ExitCode == nil || *o.ExitCode != 3 || len(o.AmbiguousAttrs) != 0 {
		t.Errorf("plain die: %+v", o)
	}
}

func TestRestartsWith(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, label, service string
		want                 bool
	}{
		{name: "restart true", label: "db:service_healthy:true", service: "db", want: true},
		{name: "among others", label: "cache:service_started:false, db:service_started:True", service: "db", want: true},
		{name: "restart false", label: "db:service_healthy:false", service: "db"},
		{name: "older compose without restart", label: "db:service_started", service: "db"},
		{name: "another service", label: "dbx:service_started:true", service: "db"},
		{name: "empty", label: "", service: "db"},
		{name: "garbage", label: ":::,db::", service: "db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := RestartsWith(tt.label, tt.service); got != tt.want {
				t.Errorf("RestartsWith(%q, %q) = %v, want %v", tt.label, tt.service, got, tt.want)
			}
		})
	}
}

func FuzzRestartsWith(f *testing.F) {
	f.Add("db:service_healthy:true,web:service_started:false", "db")
	f.Fuzz(func(t *testing.T, label, service string) {
		_ = RestartsWith(label, service)
	})
}
