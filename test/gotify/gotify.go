// Package gotify runs a real Gotify server for the notifier's tests. It is
// built from the Go module proxy, once per machine, into the user cache.
package gotify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Version is the Gotify server the tests run.
const Version = "v2.6.3"

const module = "github.com/gotify/server/v2"

// Build returns the path of the Gotify binary, building it when missing.
// Gotify embeds a web UI built by yarn, which the module does not hold;
// the build gets a placeholder, since the tests use only its REST API.
func Build() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "healmydocker-test", "gotify-"+Version, "gotify")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// This pinned release's go.mod is not in the checksum database this
	// proxy answers; its own go.sum still pins every dependency.
	goenv := append(os.Environ(), "GOSUMDB=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=1")
	dl := exec.Command("go", "mod", "download", "-json", module+"@"+Version)
	dl.Env = goenv
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("download gotify %s: %w: %s", Version, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("download gotify %s: %s %v", Version, mod.Error, err)
	}
	src, err := os.MkdirTemp("", "gotify-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return "", fmt.Errorf("copy gotify source: %w", err)
	}
	ui := filepath.Join(src, "ui", "build")
	if err := os.MkdirAll(ui, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"index.html", "manifest.json", "asset-manifest.json"} {
		if err := os.WriteFile(filepath.Join(ui, f), []byte("{}"), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	b := exec.Command("go", "build", "-o", tmp, ".")
	b.Dir, b.Env = src, goenv
	if out, err := b.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gotify %s: %w: %s", Version, err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// Server is a running Gotify server with one application.
type Server struct {
	URL      string
	AppToken string
	appID    int
	user     string
	pass     string
	cmd      *exec.Cmd
}

// Start runs Gotify on a free loopback port in dir, and creates an
// application to send to.
func Start(bin, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), user: "admin", pass: "gotify-test-pass"}
	s.cmd = exec.Command(bin)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(),
		"GOTIFY_SERVER_PORT="+strconv.Itoa(port), "GOTIFY_SERVER_LISTENADDR=127.0.0.1",
		"GOTIFY_DATABASE_DIALECT=sqlite3", "GOTIFY_DATABASE_CONNECTION="+filepath.Join(dir, "gotify.db"),
		"GOTIFY_DEFAULTUSER_NAME="+s.user, "GOTIFY_DEFAULTUSER_PASS="+s.pass,
		"GOTIFY_UPLOADEDIMAGESDIR="+filepath.Join(dir, "images"), "GOTIFY_PLUGINSDIR="+filepath.Join(dir, "plugins"))
	logf, err := os.Create(filepath.Join(dir, "gotify.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gotify: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "gotify.log"))
			return nil, fmt.Errorf("gotify not healthy within 30s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var app struct {
		ID    int    `json:"id"`
		Token string `json:"token"`
	}
	if err := s.api(http.MethodPost, "/application", `{"name":"healmydocker"}`, &app); err != nil {
		s.Stop()
		return nil, fmt.Errorf("create gotify application: %w", err)
	}
	s.AppToken, s.appID = app.Token, app.ID
	return s, nil
}

// ShoutrrrURL is the Shoutrrr URL that sends to the application with token.
func (s *Server) ShoutrrrURL(token string) string {
	return "gotify://" + strings.TrimPrefix(s.URL, "http://") + "/" + token + "?disabletls=yes"
}

// Message is one message as Gotify stored it.
type Message struct {
	Title    string `json:"title"`
	Message  string `json:"message"`
	Priority int    `json:"priority"`
}

// Messages lists the application's messages, newest first.
func (s *Server) Messages() ([]Message, error) {
	var page struct {
		Messages []Message `json:"messages"`
	}
	err := s.api(http.MethodGet, fmt.Sprintf("/application/%d/message?limit=200", s.appID), "", &page)
	return page.Messages, err
}

func (s *Server) api(method, path, body string, out any) error {
	req, err := http.NewRequest(method, s.URL+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(s.user, s.pass)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// Stop ends the server.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// ErrNoMessage is returned by WaitFor when no message matched in time.
var ErrNoMessage = errors.New("no matching gotify message")

// WaitFor polls the server's stored messages until one matches: the
// server has no push channel for a test to wait on.
func (s *Server) WaitFor(d time.Duration, match func(Message) bool) (Message, error) {
	deadline := time.Now().Add(d)
	for {
		msgs, err := s.Messages()
		if err == nil {
			for _, m := range msgs {
				if match(m) {
					return m, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return Message{}, fmt.Errorf("%w within %s (last error: %v, %d messages)", ErrNoMessage, d, err, len(msgs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
