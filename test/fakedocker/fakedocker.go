// Package fakedocker is a fake Docker Engine API on a unix socket: the
// subset HealMyDocker uses (/_ping, /version, /info, /events,
// /containers/json, /containers/{id}/json, restart, stop, start, delete).
// It exists for what the real engine can't show in a test: thousands of
// containers, dropped event streams, replays. It never replaces the real
// engine in tests that claim healing works.
package fakedocker

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
)

// Container is one fake container.
type Container struct {
	ID      string
	Name    string
	Labels  map[string]string
	Running bool
	Health  string // "", "starting", "healthy", "unhealthy"
	// ExitCode and FinishedAt are the last exit's, for an exited one.
	ExitCode   int
	FinishedAt time.Time
}

// Endpoints that Hang can make hang.
const (
	EndpointPing    = "ping"
	EndpointInfo    = "info"
	EndpointEvents  = "events"
	EndpointList    = "list"
	EndpointInspect = "inspect"
	EndpointRestart = "restart"
	EndpointStart   = "start"
	EndpointStop    = "stop"
)

// Server is the fake engine.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server

	mu         sync.Mutex
	containers map[string]*Container
	history    []events.Message
	subs       map[chan events.Message]struct{}
	streams    chan struct{} // closed to cut every event stream
	garbage    []byte        // written by streams as they are cut
	calls      []string
	requests   map[string]int // by endpoint, every API request
	last       int64
	// hung holds, per endpoint, a channel closed when it is released.
	hung map[string]chan struct{}
	// hits counts the requests received per endpoint, hung or not.
	hits map[string]int
}

// Start serves on a new unix socket in dir.
func Start(dir string) (*Server, error) {
	path := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{path: path, ln: ln, containers: map[string]*Container{}, subs: map[chan events.Message]struct{}{}, streams: make(chan struct{}), requests: map[string]int{},
		hung: map[string]chan struct{}{}, hits: map[string]int{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Host is the DOCKER_HOST of the fake.
func (s *Server) Host() string { return "unix://" + s.path }

// Close stops the fake.
func (s *Server) Close() error {
	s.CutStreams()
	err := s.srv.Close()
	_ = os.Remove(s.path)
	return err
}

// Add creates a container.
func (s *Server) Add(c Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := c
	s.containers[c.ID] = &cc
}

// SetHealth changes a container's health without an event, as when the
// daemon dropped the event for a slow subscriber.
func (s *Server) SetHealth(id, health string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.containers[id]; c != nil {
		c.Health = health
	}
}

// Hang makes every later request to endpoint (EndpointList, ...)
// wait without an answer until Release or until the client gives up, as a
// daemon stuck on a lock does.
func (s *Server) Hang(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hung[endpoint] == nil {
		s.hung[endpoint] = make(chan struct{})
	}
}

// Release answers the requests to endpoint again, the waiting ones too.
func (s *Server) Release(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.hung[endpoint]; ch != nil {
		close(ch)
		delete(s.hung, endpoint)
	}
}

// Hits is how many requests endpoint received, hung or not.
func (s *Server) Hits(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[endpoint]
}

// Exit stops a container as a crash does: exit code, finish time, and the
// die event (seen by live streams and kept for since=).
func (s *Server) Exit(id string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.containers[id]; c != nil {
		c.Running, c.ExitCode, c.FinishedAt, c.Health = false, code, time.Now(), ""
		s.emitLocked(id, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(code)})
	}
}

// hang waits while endpoint is hung; false if the client went away.
func (s *Server) hang(r *http.Request, endpoint string) bool {
	s.mu.Lock()
	s.hits[endpoint]++
	ch := s.hung[endpoint]
	s.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Calls lists the mutating requests received, as "restart <id>".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1.") {
		if i := strings.Index(path[1:], "/"); i >= 0 {
			path = path[i+1:]
		}
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Ostype", "linux")
	s.mu.Lock()
	s.requests[endpoint(r.Method, path)]++
	s.mu.Unlock()
	if !s.hang(r, hangName(path)) {
		return
	}
	switch {
	case path == "/_ping":
		_, _ = w.Write([]byte("OK"))
	case path == "/version":
		writeJSON(w, map[string]string{"Version": "20.10.99-fake", "ApiVersion": "1.41", "MinAPIVersion": "1.12"})
	case path == "/info":
		writeJSON(w, system.Info{Name: "fakehost", ServerVersion: "20.10.99-fake", SystemTime: time.Now().Format(time.RFC3339Nano)})
	case path == "/events":
		s.events(w, r)
	case path == "/containers/json":
		s.list(w, r)
	case strings.HasPrefix(path, "/containers/"):
		rest := strings.TrimPrefix(path, "/containers/")
		id, op, _ := strings.Cut(rest, "/")
		s.container(w, r, id, op)
	default:
		http.Error(w, `{"message":"not in the fake: `+path+`"}`, http.StatusNotFound)
	}
}

// endpoint names an API request for Requests: "GET /containers/json",
// "POST /containers/{id}/restart".
func endpoint(method, path string) string {
	if rest, ok := strings.CutPrefix(path, "/containers/"); ok && rest != "json" {
		_, op, _ := strings.Cut(rest, "/")
		path = "/containers/{id}/" + op
	}
	return method + " " + path
}

// Requests counts the API requests made so far, by endpoint (method and
// path, container ids replaced by {id}).
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// RequestsButPing counts every API request so far but the periodic
// /_ping: the work the healer asked of the daemon.
func (s *Server) RequestsButPing() int {
	n := 0
	for ep, c := range s.Requests() {
		if !strings.HasSuffix(ep, "/_ping") {
			n += c
		}
	}
	return n
}

// Remove removes a container as `docker rm` would: it is gone and its
// destroy event is sent.
func (s *Server) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The daemon's destroy event still carries the name and labels.
	s.emitLocked(id, events.ActionDestroy, nil)
	delete(s.containers, id)
}

// endpoint names the request for Hang.
func hangName(path string) string {
	switch {
	case path == "/_ping":
		return EndpointPing
	case path == "/info" || path == "/version":
		return EndpointInfo
	case path == "/events":
		return EndpointEvents
	case path == "/containers/json":
		return EndpointList
	case strings.HasPrefix(path, "/containers/"):
		_, op, _ := strings.Cut(strings.TrimPrefix(path, "/containers/"), "/")
		if op == "json" {
			return EndpointInspect
		}
		return op
	}
	return path
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var f map[string]map[string]bool
	_ = json.Unmarshal([]byte(r.URL.Query().Get("filters")), &f)
	all := r.URL.Query().Get("all") == "1"
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []container.Summary{}
	for _, c := range s.containers {
		if !all && !c.Running {
			continue
		}
		if hs := f["health"]; len(hs) > 0 && !hs[c.Health] {
			continue
		}
		if ss := f["status"]; len(ss) > 0 && !ss[string(summary(c).State)] {
			continue
		}
		out = append(out, summary(c))
	}
	writeJSON(w, out)
}

func summary(c *Container) container.Summary {
	state := container.StateExited
	if c.Running {
		state = container.StateRunning
	}
	// The daemon's status text: "Up 5 minutes (healthy)", "Exited (0) 2 seconds ago".
	text := "Exited (0) 1 second ago"
	if c.Running {
		text = "Up 1 second"
		switch c.Health {
		case "starting":
			text += " (health: starting)"
		case "healthy", "unhealthy":
			text += " (" + c.Health + ")"
		}
	}
	return container.Summary{ID: c.ID, Names: []string{"/" + c.Name}, Image: "fake", Labels: c.Labels, State: state, Status: text}
}

func (s *Server) container(w http.ResponseWriter, r *http.Request, id, op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"message": "No such container: " + id})
		return
	}
	switch {
	case op == "json" && r.Method == http.MethodGet:
		st := &container.State{Running: c.Running, Status: container.StateExited, StartedAt: time.Now().Format(time.RFC3339Nano), ExitCode: c.ExitCode}
		if !c.FinishedAt.IsZero() {
			st.FinishedAt = c.FinishedAt.Format(time.RFC3339Nano)
		}
		if c.Running {
			st.Status = container.StateRunning
		}
		if c.Health != "" {
			st.Health = &container.Health{Status: container.HealthStatus(c.Health), Log: []*container.HealthcheckResult{{End: time.Now(), Output: "fake probe"}}}
		}
		writeJSON(w, container.InspectResponse{ID: c.ID, Name: "/" + c.Name, State: st, Config: &container.Config{Labels: c.Labels, Image: "fake"}, HostConfig: &container.HostConfig{}})
	case op == "restart" && r.Method == http.MethodPost:
		s.calls = append(s.calls, "restart "+id)
		s.emitLocked(id, events.ActionKill, map[string]string{"signal": "15"})
		s.emitLocked(id, events.ActionDie, map[string]string{"exitCode": "0"})
		c.Running, c.Health = true, "starting"
		s.emitLocked(id, events.ActionStart, nil)
		s.emitLocked(id, events.ActionRestart, nil)
		w.WriteHeader(http.StatusNoContent)
	case op == "stop" && r.Method == http.MethodPost:
		s.calls = append(s.calls, "stop "+id)
		c.Running = false
		s.emitLocked(id, events.ActionKill, map[string]string{"signal": "15"})
		s.emitLocked(id, events.ActionDie, map[string]string{"exitCode": "0"})
		s.emitLocked(id, events.ActionStop, nil)
		w.WriteHeader(http.StatusNoContent)
	case op == "start" && r.Method == http.MethodPost:
		s.calls = append(s.calls, "start "+id)
		c.Running = true
		s.emitLocked(id, events.ActionStart, nil)
		w.WriteHeader(http.StatusNoContent)
	case op == "" && r.Method == http.MethodDelete:
		s.calls = append(s.calls, "delete "+id)
		s.emitLocked(id, events.ActionDestroy, nil)
		delete(s.containers, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, fmt.Sprintf(`{"message":"not in the fake: %s %s"}`, r.Method, op), http.StatusNotFound)
	}
}
