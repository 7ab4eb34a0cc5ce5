package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	var notReady error
	s := New("127.0.0.1:0", "/hmd", func() error { return notReady }, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics")
	}), slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name     string
		path     string
		notReady error
		want     int
		body     string
	}{
		{"alive", "/hmd/healthz", nil, 200, "ok"},
		{"ready", "/hmd/readyz", nil, 200, "ready"},
		{"not ready says why", "/hmd/readyz", errors.New("docker: connection refused"), 503, "docker: connection refused"},
		{"alive while not ready", "/hmd/healthz", errors.New("docker down"), 200, "ok"},
		{"metrics", "/hmd/metrics", nil, 200, "metrics"},
		{"outside the prefix", "/healthz", nil, 404, ""},
	}
	for _, tt := range tests {
		notReady = tt.notReady
		code, body := get(tt.path)
		if code != tt.want || !strings.Contains(body, tt.body) {
			t.Errorf("%s: GET %s = %d %q, want %d containing %q", tt.name, tt.path, code, body, tt.want, tt.body)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, want string
	}{
		{"0.0.0.0", "http://127.0.0.1:8380/p"},
		{"", "http://127.0.0.1:8380/p"},
		{"::", "http://[::1]:8380/p"},
		{"10.1.2.3", "http://10.1.2.3:8380/p"},
	}
	for _, tt := range tests {
		if got := URL(tt.addr, 8380, "/p"); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
