package dockertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Proxy is a Docker socket proxy that allows only listed endpoints, like the
// common socket proxies: anything else gets 403 and is recorded.
type Proxy struct {
	path   string
	srv    *http.Server
	allow  []rule
	mu     sync.Mutex
	denied []string
	seen   []string
}

type rule struct {
	method string
	path   *regexp.Regexp
}

// StartProxy serves a proxy to the engine's socket in dir. allow holds
// "METHOD /path-regexp" lines; the API version prefix is stripped first.
func StartProxy(dir string, allow ...string) (*Proxy, error) {
	p := &Proxy{path: filepath.Join(dir, "proxy.sock")}
	for _, a := range allow {
		m, re, _ := strings.Cut(a, " ")
		p.allow = append(p.allow, rule{m, regexp.MustCompile("^" + re + "$")})
	}
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", target)
		}},
		FlushInterval: -1, // the event stream must flow
	}
	versioned := regexp.MustCompile(`^/v1\.\d+`)
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := versioned.ReplaceAllString(r.URL.Path, "")
		call := r.Method + " " + path
		p.mu.Lock()
		p.seen = append(p.seen, call)
		p.mu.Unlock()
		for _, a := range p.allow {
			if a.method == r.Method && a.path.MatchString(path) {
				rp.ServeHTTP(w, r)
				return
			}
		}
		p.mu.Lock()
		p.denied = append(p.denied, call)
		p.mu.Unlock()
		http.Error(w, `{"message":"forbidden by the socket proxy"}`, http.StatusForbidden)
	})}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return nil, err
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Host is the DOCKER_HOST of the proxy.
func (p *Proxy) Host() string { return "unix://" + p.path }

// Denied lists the calls the proxy refused.
func (p *Proxy) Denied() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.denied...)
}

// Seen lists every call made through the proxy.
func (p *Proxy) Seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }
