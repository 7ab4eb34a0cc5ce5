// Package httpapi owns the healer's HTTP endpoint: liveness, readiness,
// metrics, the status JSON and page with their live event stream, and the
// client side of `healer healthcheck`.
package httpapi

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Options configure the endpoint. Nil handlers leave their routes out.
type Options struct {
	Addr, Prefix string
	// Token, when set, is required as a bearer token (or ?token= for the
	// page's event stream, which browsers cannot give headers) everywhere
	// but /healthz.
	Token string
	// Ready says why the healer is not ready.
	Ready   func() error
	Metrics http.Handler
	// Status is the JSON of GET <prefix>/ with ?limit= events: a value to
	// encode, or a json.RawMessage written as it is.
	Status func(ctx context.Context, limit int) (any, error)
	// Subscribe calls f with each live event's JSON until cancel.
	Subscribe func(f func([]byte)) (cancel func(), err error)
	Log       *slog.Logger
}

// Server serves the healer's HTTP endpoint.
type Server struct {
	o Options
	// bound is told the listening address once it is known.
	bound func(net.Addr)
}

// New returns a server for o.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, bound: func(net.Addr) {}}
}

// OnBound registers f to learn the bound address (port 0 picks one).
func (s *Server) OnBound(f func(net.Addr)) { s.bound = f }

// DefaultLimit and MaxLimit bound the events in the status JSON.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	p := s.o.Prefix
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+p+"/readyz", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		if err := s.o.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	}))
	if s.o.Metrics != nil {
		mux.HandleFunc("GET "+p+"/metrics", s.auth(s.o.Metrics.ServeHTTP))
	}
	if s.o.Status != nil {
		mux.HandleFunc("GET "+p+"/{$}", s.auth(s.status))
		mux.HandleFunc("GET "+p+"/ui", s.auth(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
			_, _ = w.Write(page)
		}))
	}
	if s.o.Subscribe != nil {
		mux.HandleFunc("GET "+p+"/events", s.auth(s.stream))
	}
	if p != "" {
		// The page's relative links need the trailing slash.
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
		})
	}
	return mux
}

// auth requires the token, if one is set.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.o.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.o.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if got == "" && r.URL.Query().Has("token") {
			got = "Bearer " + r.URL.Query().Get("token")
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="healmydocker"`)
			http.Error(w, "unauthorized: a bearer token is required (HMD_HTTP_TOKEN)", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	limit := DefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("limit %q: expected a number of events from 0 to %d", v, MaxLimit), http.StatusBadRequest)
			return
		}
		limit = min(n, MaxLimit)
	}
	st, err := s.o.Status(r.Context(), limit)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if raw, ok := st.(json.RawMessage); ok {
		// Encoded already, as the caller serves it.
		_, _ = w.Write(raw)
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// stream sends live events as Server-Sent Events. A client too slow to
// keep up loses events, never the healer's time.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan []byte, 256)
	cancel, err := s.o.Subscribe(func(b []byte) {
		select {
		case ch <- b:
		default:
		}
	})
	if err != nil {
		http.Error(w, "events: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, ": connected\n\n")
	flusher.Flush()
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			flusher.Flush()
		case <-keepalive.C:
			_, _ = io.WriteString(w, ": keepalive\n\n")
			flusher.Flush()
		}
	}
}

//go:embed ui.html
var page []byte

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("http endpoint: listen on %s: %w", s.o.Addr, err)
	}
	s.bound(ln.Addr())
	s.o.Log.Info("http endpoint listening", "addr", ln.Addr().String(), "prefix", s.o.Prefix, "token", s.o.Token != "")
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http endpoint: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http endpoint: shutdown: %w", err)
	}
	return nil
}

// URL is the base URL a local client uses for address, port and prefix:
// a wildcard address is reached on loopback.
func URL(address string, port int, prefix string) string {
	switch address {
	case "", "0.0.0.0":
		address = "127.0.0.1"
	case "::", "[::]":
		address = "::1"
	}
	return "http://" + net.JoinHostPort(address, strconv.Itoa(port)) + prefix
}

// Check asks url for health and returns nil on 200.
func Check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
