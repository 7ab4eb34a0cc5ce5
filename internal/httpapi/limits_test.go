package httpapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/test/testkit"
)

func streamServer(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	if o.Status == nil {
		o.Status = func(context.Context, int) (any, error) { return map[string]int{}, nil }
	}
	if o.Subscribe == nil {
		o.Subscribe = func(func([]byte)) (func(), error) { return func() {}, nil }
	}
	o.Ready = func() error { return nil }
	o.Log = slog.New(slog.DiscardHandler)
	s := New(o)
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config = s.httpServer()
	srv.Start()
	t.Cleanup(srv.Close)
	return s, srv
}

// openStream starts a live event stream and waits for its first line.
func openStream(t *testing.T, url string) (*http.Response, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, ": connected") {
			t.Fatalf("stream did not start: %q %v", line, err)
		}
	}
	return resp, nil
}

// More live streams than the cap get 503; a closed one frees its slot.
func TestStreamCap(t *testing.T) {
	t.Parallel()
	s, srv := streamServer(t, Options{MaxStreams: 2})
	var open []*http.Response
	for range 2 {
		resp, err := openStream(t, srv.URL+"/events")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream within the cap: %v %v", err, resp)
		}
		open = append(open, resp)
	}
	resp, err := openStream(t, srv.URL+"/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "HMD_HTTP_MAX_STREAMS") {
		t.Errorf("third stream: %d %q, want 503 naming HMD_HTTP_MAX_STREAMS", resp.StatusCode, body)
	}
	open[0].Body.Close()
	testkit.Eventually(t, 10*time.Second, "a closed stream to free its slot (streams open)", func() (int64, bool) {
		n := s.streams.Load()
		return n, n == 1
	})
	resp, err = openStream(t, srv.URL+"/events")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream after one closed: %v %v", err, resp)
	}
	resp.Body.Close()
	open[1].Body.Close()
	if New(Options{}).o.MaxStreams != DefaultMaxStreams || DefaultMaxStreams != 16 {
		t.Errorf("default cap %d, want 16", New(Options{}).o.MaxStreams)
	}
}

// A stream client that stops reading is dropped at the write deadline.
func TestStreamWriteDeadline(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var push func([]byte)
	s, srv := streamServer(t, Options{Subscribe: func(f func([]byte)) (func(), error) {
		mu.Lock()
		push = f
		mu.Unlock()
		return func() {}, nil
	}})
	s.writeTimeout = 300 * time.Millisecond
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: feed events until the server gives up on this client.
	big := []byte(strings.Repeat("x", 64<<10))
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		f := push
		mu.Unlock()
		if f != nil {
			f(big)
			if s.streams.Load() == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("a client that does not read still holds its stream")
		}
		time.Sleep(time.Millisecond)
	}
}

// A client that sends half a request is cut off at the header timeout;
// the idle and read timeouts are set.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	s, srv := streamServer(t, Options{})
	hs := s.httpServer()
	if hs.ReadHeaderTimeout != 5*time.Second || hs.ReadTimeout != 10*time.Second || hs.IdleTimeout != time.Minute {
		t.Errorf("timeouts: header %s, read %s, idle %s", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout)
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the half request was not cut off: %v", err)
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("the half request held its connection for %s", d)
	}
}

// The token is taken from the query string only by the page and its
// event stream; everything else needs the header.
func TestTokenInQueryOnlyForThePage(t *testing.T) {
	t.Parallel()
	_, srv := streamServer(t, Options{Token: "tok", Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "m") })})
	tests := []struct {
		name, path, header string
		want               int
	}{
		{"page by query", "/ui?token=tok", "", 200},
		{"stream by query", "/events?token=tok", "", 200},
		{"status by query", "/?token=tok", "", 401},
		{"metrics by query", "/metrics?token=tok", "", 401},
		{"readyz by query", "/readyz?token=tok", "", 401},
		{"metrics by header", "/metrics", "tok", 200},
		{"status by header", "/", "tok", 200},
		{"page wrong token", "/ui?token=nope", "", 401},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
		if tt.header != "" {
			req.Header.Set("Authorization", "Bearer "+tt.header)
		}
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("%s: GET %s = %d, want %d", tt.name, tt.path, resp.StatusCode, tt.want)
		}
		cancel()
		resp.Body.Close()
	}
}

func TestValidPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "/healer", "/a/b-c_d.e~f"} {
		if err := ValidPrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"healer", "/", "/x/", "/a b", "/{x}", "/x//y", "/a?b", "/é"} {
		if err := ValidPrefix(p); err == nil {
			t.Errorf("%q accepted", p)
		}
		// Whatever passes config, Handler never panics; a bad one is refused by Run.
		if err := New(Options{Prefix: p, Addr: "127.0.0.1:0"}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("Run with %q: %v", p, err)
		}
	}
}
