package fakedocker

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
)

// The event side of the fake: what tests emit, and the /events stream
// that replays and follows it.

// Emit records an event about container id and sends it to live streams.
func (s *Server) Emit(id string, action events.Action, attrs map[string]string) events.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitLocked(id, action, attrs)
}

// EmitAt is Emit with the daemon's timestamp given, to send events out of
// time order as a busy daemon does.
func (s *Server) EmitAt(id string, action events.Action, attrs map[string]string, at time.Time) events.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitAtLocked(id, action, attrs, at.UnixNano())
}

func (s *Server) emitLocked(id string, action events.Action, extra map[string]string) events.Message {
	now := time.Now().UnixNano()
	if now <= s.last {
		now = s.last + 1
	}
	s.last = now
	return s.emitAtLocked(id, action, extra, now)
}

func (s *Server) emitAtLocked(id string, action events.Action, extra map[string]string, now int64) events.Message {
	attrs := map[string]string{}
	if c := s.containers[id]; c != nil {
		for k, v := range c.Labels {
			attrs[k] = v
		}
		attrs["name"] = c.Name
		attrs["image"] = "fake"
		switch action {
		case events.ActionHealthStatusUnhealthy:
			c.Health = "unhealthy"
		case events.ActionHealthStatusHealthy:
			c.Health = "healthy"
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	m := events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}, Scope: "local", Time: now / 1e9, TimeNano: now}
	s.history = append(s.history, m)
	for ch := range s.subs {
		// Like the daemon: a subscriber that does not take an event within
		// 100 ms loses it.
		select {
		case ch <- m:
		default:
			select {
			case ch <- m:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return m
}

// CutStreams ends every open event stream, as a daemon restart would.
func (s *Server) CutStreams() { s.CutWithGarbage(nil) }

// CutWithGarbage writes b (malformed or truncated JSON) on every event
// stream, then cuts them: a daemon or a proxy that broke mid-event.
func (s *Server) CutWithGarbage(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.garbage = b
	// Unsubscribe now, so no later event reaches a stream being cut.
	clear(s.subs)
	close(s.streams)
	s.streams = make(chan struct{})
}

// events serves GET /events: the recorded events since the request's
// "since", then each new one until the stream is cut.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		sec, frac, _ := strings.Cut(v, ".")
		a, _ := strconv.ParseInt(sec, 10, 64)
		frac = (frac + "000000000")[:9]
		b, _ := strconv.ParseInt(frac, 10, 64)
		since = a*1e9 + b
	}
	ch := make(chan events.Message, 1024)
	s.mu.Lock()
	var backlog []events.Message
	if since > 0 {
		for _, m := range s.history {
			if m.TimeNano >= since {
				backlog = append(backlog, m)
			}
		}
	}
	s.subs[ch] = struct{}{}
	cut := s.streams
	s.mu.Unlock()
	garbage := func() []byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.garbage
	}
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	// Events queued before a cut were sent by the daemon before it went.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	if fl != nil {
		fl.Flush()
	}
	for _, m := range backlog {
		_ = enc.Encode(m)
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-cut:
			if g := garbage(); g != nil {
				_, _ = w.Write(g)
				if fl != nil {
					fl.Flush()
				}
			}
			return
		case m := <-ch:
			if err := enc.Encode(m); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}
