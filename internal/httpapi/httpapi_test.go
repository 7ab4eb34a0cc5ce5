package httpapi

import (
	"context"
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
	s := New(Options{Addr: "127.0.0.1:0", Prefix: "/hmd", Ready: func() error { return notReady }, Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics")
	}), Status: func(_ context.Context, limit int) (any, error) { return map[string]int{"limit": limit}, nil }, Log: slog.New(slog.DiscardHandler)})
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
		{"status", "/hmd/", nil, 200, `"limit": 50`},
		{"status limit", "/hmd/?limit=3", nil, 200, `"limit": 3`},
		{"status limit capped", "/hmd/?limit=99999", nil, 200, `"limit": 1000`},
		{"status bad limit", "/hmd/?limit=many", nil, 400, "limit"},
		{"page", "/hmd/ui", nil, 200, "<title>HealMyDocker</title>"},
		{"no such route", "/hmd/nothing", nil, 404, ""},
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

func TestToken(t *testing.T) {
	t.Parallel()
	s := New(Options{Prefix: "", Token: "s3cret", Ready: func() error { return nil },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }),
		Status:  func(context.Context, int) (any, error) { return "status", nil }})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tests := []struct {
		name, path, header string
		want               int
	}{
		{"healthz needs none", "/healthz", "", 200},
		{"readyz needs it", "/readyz", "", 401},
		{"metrics needs it", "/metrics", "", 401},
		{"status needs it", "/", "", 401},
		{"page needs it", "/ui", "", 401},
		{"wrong token", "/metrics", "Bearer nope", 401},
		{"bearer token", "/metrics", "Bearer s3cret", 200},
		{"query token for the page", "/ui?token=s3cret", "", 200},
		{"no query token for the status", "/?token=s3cret", "", 401},
		{"wrong query token", "/ui?token=s3cre", "", 401},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: GET %s = %d, want %d", tt.name, tt.path, resp.StatusCode, tt.want)
		}
		if resp.StatusCode == 401 && !strings.Contains(string(b), "HMD_HTTP_TOKEN") {
			t.Errorf("%s: a 401 should say what is needed: %q", tt.name, b)
		}
	}
}
