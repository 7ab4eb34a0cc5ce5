package docker

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// connLog records the watcher's connects (true) and losses (false).
type connLog struct{ log *waitlog.Log[bool] }

func (c connLog) DockerConnected(Info) { c.log.Add(true) }
func (c connLog) DockerLost(error)     { c.log.Add(false) }

func (c connLog) wait(t *testing.T, what string, up bool, n int) {
	t.Helper()
	if _, ok := c.log.WaitNth(10*time.Second, n, func(v bool) bool { return v == up }); !ok {
		t.Fatalf("no %s (connects/losses so far: %v)", what, c.log.All(func(bool) bool { return true }))
	}
}

// hangWatcher runs a watcher with a 300 ms call deadline against a fake
// whose endpoint hangs from the start (hangFirst) or once connected.
func hangWatcher(t *testing.T, endpoint string, hangFirst bool) {
	fake, c := fakeClient(t)
	defer c.Close()
	c.SetTimeout(300 * time.Millisecond)
	fake.Add(fakedocker.Container{ID: "sick0000000000", Name: "sick", Running: true, Health: "unhealthy"})
	if hangFirst {
		fake.Hang(endpoint)
	}
	s, st := newSink(), connLog{waitlog.New[bool]()}
	w := NewWatcher(c, s.put, st, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	began := time.Now()
	if !hangFirst {
		st.wait(t, "first connect", true, 1)
		s.waitN(t, 1)
		fake.Hang(endpoint)
		if endpoint != fakedocker.EndpointPing {
			// A list or inspect is made by the reconcile after a reconnect.
			fake.CutStreams()
		}
	}
	st.wait(t, "loss while "+endpoint+" hangs", false, 1)
	lost := time.Since(began)
	// It keeps trying while the endpoint hangs, each try cut off.
	hits := fake.Hits(endpoint)
	if _, ok := st.log.WaitNth(10*time.Second, 2, func(v bool) bool { return !v }); !ok || fake.Hits(endpoint) <= hits {
		t.Fatalf("the watcher stopped trying while %s hangs (%d calls)", endpoint, fake.Hits(endpoint))
	}
	fake.Release(endpoint)
	connects := len(st.log.All(func(v bool) bool { return v }))
	st.wait(t, "reconnect after the release", true, connects+1)
	// The reconcile after the reconnect reports the sick container again.
	if _, ok := s.log.WaitNth(10*time.Second, 2-boolInt(hangFirst), func(o hmd.Observed) bool { return o.Reconciled }); !ok {
		t.Fatalf("no reconcile after the release")
	}
	// Hung again, the watcher still stops at once when asked to.
	hits = fake.Hits(endpoint)
	fake.Hang(endpoint)
	fake.CutStreams()
	testkit.Until(t, 10*time.Second, "a watcher call to the hung "+endpoint, func() bool { return fake.Hits(endpoint) > hits })
	stopAsked := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatalf("the watcher did not stop within 2 s while %s hangs", endpoint)
	}
	t.Logf("%s hung: lost after %s; stopped %s after being asked", endpoint, lost.Round(time.Millisecond), time.Since(stopAsked).Round(time.Millisecond))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Each endpoint the watcher uses, hung, makes it report the loss (so
// /readyz says 503) and reconnect, instead of freezing with the event loop
// stuck behind the hung call.
func TestWatcherHungCallsAreCutOff(t *testing.T) {
	for _, tc := range []struct {
		endpoint  string
		hangFirst bool
	}{
		{fakedocker.EndpointEvents, true},
		{fakedocker.EndpointPing, true},
		{fakedocker.EndpointList, true},
		{fakedocker.EndpointInspect, true},
		{fakedocker.EndpointPing, false},
		{fakedocker.EndpointList, false},
		{fakedocker.EndpointInspect, false},
		{fakedocker.EndpointEvents, false},
	} {
		name := tc.endpoint + "/at start"
		if !tc.hangFirst {
			name = tc.endpoint + "/once connected"
		}
		t.Run(name, func(t *testing.T) { hangWatcher(t, tc.endpoint, tc.hangFirst) })
	}
}

// A periodic reconcile whose list hangs ends the session: a daemon that
// answers pings but not lists is not healthy.
func TestWatcherPeriodicReconcileHangReconnects(t *testing.T) {
	fake, c := fakeClient(t)
	defer c.Close()
	c.SetTimeout(300 * time.Millisecond)
	s, st := newSink(), connLog{waitlog.New[bool]()}
	w := NewWatcher(c, s.put, st, time.Hour, slog.New(slog.DiscardHandler))
	w.ReconcileEvery(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	st.wait(t, "connect", true, 1)
	fake.Hang(fakedocker.EndpointList)
	st.wait(t, "loss when the periodic list hangs", false, 1)
	fake.Release(fakedocker.EndpointList)
	st.wait(t, "reconnect", true, 2)
}

// A container that crashed while the connection was down is reported at
// the reconnect as a die found by listing, with its exit code; one that
// exited before the last event seen is not.
func TestWatcherFindsContainersThatDiedWhileDisconnected(t *testing.T) {
	fake, c := fakeClient(t)
	defer c.Close()
	c.SetTimeout(300 * time.Millisecond)
	fake.Add(fakedocker.Container{ID: "old00000000000", Name: "old", Running: true, Labels: map[string]string{"healme": "true"}})
	fake.Add(fakedocker.Container{ID: "crash000000000", Name: "crash", Running: true, Labels: map[string]string{"healme": "true"}})
	fake.Add(fakedocker.Container{ID: "other000000000", Name: "other", Running: true})
	s, st := newSink(), connLog{waitlog.New[bool]()}
	w := NewWatcher(c, s.put, st, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	w.Selects(func(labels map[string]string, _ string) bool { return labels["healme"] == "true" })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	st.wait(t, "connect", true, 1)
	fake.Exit("old00000000000", 1) // seen live
	s.waitN(t, 1)
	// The daemon goes away; two containers crash meanwhile.
	fake.Hang(fakedocker.EndpointPing)
	st.wait(t, "loss", false, 1)
	fake.Exit("crash000000000", 3)
	fake.Exit("other000000000", 4)
	fake.Release(fakedocker.EndpointPing)
	st.wait(t, "reconnect", true, 2)
	found, ok := s.log.WaitNth(10*time.Second, 1, func(o hmd.Observed) bool { return o.Reconciled })
	if !ok {
		t.Fatal("the crash while disconnected was not found")
	}
	if found.ContainerID != "crash000000000" || found.Kind != hmd.DockerDie || found.ExitCode == nil || *found.ExitCode != 3 || found.Name != "crash" || found.Labels["healme"] != "true" {
		t.Errorf("found %+v, want crash's die with code 3", found)
	}
	// The replayed die (since=) comes too, marked replayed; nothing else
	// is found by listing.
	fake.Emit("old00000000000", events.ActionStart, nil)
	if _, ok := s.log.WaitNth(10*time.Second, 1, func(o hmd.Observed) bool { return o.ContainerID == "old00000000000" && o.Kind == hmd.DockerStart }); !ok {
		t.Fatal("no live event after the reconnect")
	}
	if n := len(s.log.All(func(o hmd.Observed) bool { return o.Reconciled })); n != 1 {
		t.Errorf("%d containers found by listing, want 1: %+v", n, s.log.All(func(o hmd.Observed) bool { return o.Reconciled }))
	}
	for _, o := range s.log.All(func(o hmd.Observed) bool { return o.ContainerID == "crash000000000" && !o.Reconciled }) {
		if !o.Replayed {
			t.Errorf("the crash's die from the stream is not marked replayed: %+v", o)
		}
	}
}
