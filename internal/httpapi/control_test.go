package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Control changes what the healer does: it is off without a token, takes
// the token only from the header, and reads a bounded, strict body.
func TestControlAuth(t *testing.T) {
	t.Parallel()
	var got []ControlRequest
	ctl := func(_ context.Context, action string, r ControlRequest) ([]ControlResult, error) {
		got = append(got, r)
		return []ControlResult{{Name: "web"}}, nil
	}
	open := New(Options{Control: ctl, Ready: func() error { return nil }}).Handler()
	locked := New(Options{Control: ctl, Token: "s3cret", Ready: func() error { return nil }}).Handler()
	body := `{"names":["web"],"for":"30m"}`
	tests := []struct {
		name   string
		h      http.Handler
		path   string
		auth   string
		body   string
		status int
	}{
		{"no token configured", open, "/control/pause", "", body, http.StatusForbidden},
		{"no token given", locked, "/control/pause", "", body, http.StatusUnauthorized},
		{"wrong token", locked, "/control/pause", "Bearer nope", body, http.StatusUnauthorized},
		{"token in the query string", locked, "/control/pause?token=s3cret", "", body, http.StatusUnauthorized},
		{"unknown action", locked, "/control/reboot", "Bearer s3cret", body, http.StatusNotFound},
		{"unknown field", locked, "/control/pause", "Bearer s3cret", `{"names":["web"],"shell":"rm"}`, http.StatusBadRequest},
		{"too large", locked, "/control/pause", "Bearer s3cret", `{"reason":"` + strings.Repeat("x", maxControlBody) + `"}`, http.StatusBadRequest},
		{"pause", locked, "/control/pause", "Bearer s3cret", body, http.StatusOK},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		tt.h.ServeHTTP(rec, req)
		if rec.Code != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, rec.Code, strings.TrimSpace(rec.Body.String()), tt.status)
		}
	}
	if len(got) != 1 || got[0].For != "30m" || got[0].Names[0] != "web" {
		t.Errorf("control called with %+v: want once, for the authorised pause", got)
	}
}
