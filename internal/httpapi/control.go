package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ControlRequest is what `healer pause` and `healer resume` ask of a
// running healer.
type ControlRequest struct {
	Names []string `json:"names,omitempty"`
	All   bool     `json:"all,omitempty"`
	// For is how long a pause lasts (a duration such as 30m); empty: until
	// resumed.
	For    string `json:"for,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ControlResult is what happened to one container.
type ControlResult struct {
	Name  string     `json:"name"`
	ID    string     `json:"id,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	Error string     `json:"error,omitempty"`
}

// ErrBadRequest marks a control request that is wrong in itself (400), as
// against a failure to carry it out.
var ErrBadRequest = errors.New("bad request")

// Control carries out action (pause or resume) on a running healer.
type Control func(ctx context.Context, action string, r ControlRequest) ([]ControlResult, error)

// maxControlBody bounds a control request's body.
const maxControlBody = 64 << 10

// control serves POST <prefix>/control/{pause,resume}. It changes what the
// healer does, so it needs the token in the Authorization header (never in
// the query string), and is off without one.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	if s.o.Token == "" {
		http.Error(w, "control is off: set HMD_HTTP_TOKEN to pause or resume through the HTTP endpoint", http.StatusForbidden)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.o.Token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="healmydocker"`)
		http.Error(w, "unauthorized: a bearer token is required (HMD_HTTP_TOKEN)", http.StatusUnauthorized)
		return
	}
	action := r.PathValue("action")
	if action != "pause" && action != "resume" {
		http.Error(w, fmt.Sprintf("unknown control %q: expected pause or resume", action), http.StatusNotFound)
		return
	}
	var req ControlRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "control request: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := s.o.Control(r.Context(), action, req)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
