// Package httpapi owns the healer's HTTP endpoint: liveness, readiness and
// metrics, and the client side of `healer healthcheck`.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Server serves <prefix>/healthz, <prefix>/readyz and <prefix>/metrics.
type Server struct {
	addr    string
	prefix  string
	ready   func() error
	metrics http.Handler
	log     *slog.Logger
	// bound is told the listening address once it is known.
	bound func(net.Addr)
}

// New returns a server on addr; ready says why the healer is not ready.
func New(addr, prefix string, ready func() error, metrics http.Handler, log *slog.Logger) *Server {
	return &Server{addr: addr, prefix: prefix, ready: ready, metrics: metrics, log: log, bound: func(net.Addr) {}}
}

// OnBound registers f to learn the bound address (port 0 picks one).
func (s *Server) OnBound(f func(net.Addr)) { s.bound = f }

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.prefix+"/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+s.prefix+"/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if s.metrics != nil {
		mux.Handle("GET "+s.prefix+"/metrics", s.metrics)
	}
	return mux
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http endpoint: listen on %s: %w", s.addr, err)
	}
	s.bound(ln.Addr())
	s.log.Info("http endpoint listening", "addr", ln.Addr().String(), "prefix", s.prefix)
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
