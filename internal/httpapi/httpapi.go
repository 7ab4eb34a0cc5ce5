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
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/healmydocker/healmydocker/internal/safe"
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
	// MaxStreams bounds the live event streams served at once; more get
	// 503. 0 means DefaultMaxStreams.
	MaxStreams int
	// Control pauses and resumes healing (healer pause, healer resume).
	Control Control
	Log     *slog.Logger
	// Guard reports a handler's panic; nil only logs it.
	Guard *safe.Guard
}

// Listener bounds: a client that sends nothing, or reads nothing, holds a
// connection this long at most.
const (
	DefaultMaxStreams = 16
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	// writeTimeout bounds each write of the event stream, not the stream.
	writeTimeout = 10 * time.Second
	keepalive    = 25 * time.Second
)

// ValidPrefix reports why prefix cannot prefix the routes, or nil: it is
// empty, or path segments of unreserved characters, without a trailing
// slash.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("a path such as /healer: segments of letters, digits, . _ ~ -, starting with / and without a trailing /")
	}
	return nil
}

var prefixRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)

// Server serves the healer's HTTP endpoint.
type Server struct {
	o Options
	// streams counts the live event streams being served.
	streams atomic.Int64
	// writeTimeout is writeTimeout; tests shorten it.
	writeTimeout time.Duration
	// bound is told the listening address once it is known.
	bound func(net.Addr)
}

// New returns a server for o.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	return &Server{o: o, bound: func(net.Addr) {}, writeTimeout: writeTimeout}
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
	mux.HandleFunc("GET "+p+"/readyz", s.auth(false, func(w http.ResponseWriter, _ *http.Request) {
		if err := s.o.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	}))
	if s.o.Metrics != nil {
		mux.HandleFunc("GET "+p+"/metrics", s.auth(false, s.o.Metrics.ServeHTTP))
	}
	if s.o.Status != nil {
		mux.HandleFunc("GET "+p+"/{$}", s.auth(false, s.status))
		mux.HandleFunc("GET "+p+"/ui", s.auth(true, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
			_, _ = w.Write(page)
		}))
	}
	if s.o.Subscribe != nil {
		mux.HandleFunc("GET "+p+"/events", s.auth(true, s.stream))
	}
	if s.o.Control != nil {
		mux.HandleFunc("POST "+p+"/control/{action}", s.control)
	}
	if p != "" {
		// The page's relative links need the trailing slash.
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, p+"/", http.StatusMovedPermanently)
		})
	}
	return s.recovering(mux)
}

// auth requires the token, if one is set. query allows ?token= too, only
// for the page and its event stream, which a browser opens by URL: a token
// in a URL ends up in logs and history, so the rest take the header only.
func (s *Server) auth(query bool, h http.HandlerFunc) http.HandlerFunc {
	if s.o.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.o.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if got == "" && query && r.URL.Query().Has("token") {
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
	if n := s.streams.Add(1); n > int64(s.o.MaxStreams) {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, fmt.Sprintf("too many live event streams (%d at most, HMD_HTTP_MAX_STREAMS)", s.o.MaxStreams), http.StatusServiceUnavailable)
		return
	}
	defer s.streams.Add(-1)
	rc := http.NewResponseController(w)
	// send writes with a deadline of its own: a client that stops reading
	// is dropped, instead of holding a stream slot for ever.
	send := func(text string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
		return rc.Flush()
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
	// The server's read timeout would end the stream too.
	_ = rc.SetReadDeadline(time.Time{})
	if send(": connected\n\n") != nil {
		return
	}
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if send("data: "+string(b)+"\n\n") != nil {
				return
			}
		case <-tick.C:
			if send(": keepalive\n\n") != nil {
				return
			}
		}
	}
}

// httpServer bounds what a client can hold: headers within 5 s, a request
// within 10 s, an idle keep-alive connection for a minute. The event stream
// lifts its read deadline and sets a write deadline per write instead.
func (s *Server) httpServer() *http.Server {
	return &http.Server{Handler: s.Handler(), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}

//go:embed ui.html
var page []byte

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if err := ValidPrefix(s.o.Prefix); err != nil {
		return fmt.Errorf("http endpoint: prefix %q: %w", s.o.Prefix, err)
	}
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("http endpoint: listen on %s: %w", s.o.Addr, err)
	}
	s.bound(ln.Addr())
	s.o.Log.Info("http endpoint listening", "addr", ln.Addr().String(), "prefix", s.o.Prefix, "token", s.o.Token != "")
	srv := s.httpServer()
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
