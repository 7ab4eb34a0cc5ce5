package docker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
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
	fake.Add(fakedocker.Container{ID: "sick0000000000", Name: "sick", Running: true, Health: "unhealthy", Labels: map[string]string{"healme": "true"}})
	fake.Add(fakedocker.Container{ID: "well0000000000", Name: "well", Running: true, Health: "healthy"})
	s, st := newSink(), &status{up: make(chan struct{}, 10)}
	w := NewWatcher(c, s.put, st, time.Hour, slog.New(slog.DiscardHandler))
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
	// (listed before the stream is read), the missed start (replayed), then
	// the live kill; the healthy and die events that since= sends again are
	// dropped. Events on the stream are in order, so once the kill is here
	// every replay has been handled.
	got = s.waitN(t, 6)
	rec, start, kill := got[3], got[4], got[5]
	if rec.Kind != hmd.DockerUnhealthy || !rec.Reconciled {
		t.Errorf("first after reconnect: %+v, want the reconciled unhealthy container", rec)
	}
	if start.Kind != hmd.DockerStart || !start.Replayed {
		t.Errorf("second after reconnect: %+v, want the missed start, marked replayed", start)
	}
	if kill.Kind != hmd.DockerKill || kill.Replayed || kill.Signal != "9" {
		t.Errorf("third after reconnect: %+v, want the live kill", kill)
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
