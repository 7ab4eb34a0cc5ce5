// Package dockertest drives the real Docker Engine for tests through the
// docker CLI: it builds the FROM scratch fixture image, runs labelled
// containers, streams their events, and removes everything it made.
// Every container carries the label hmd.test=<run id>, so tests never touch
// containers of others, nor the ghosts the engine sometimes lists.
package dockertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/test/waitlog"
)

// TestLabel is the label key every test container carries.
const TestLabel = "hmd.test"

// Env is one test binary's use of the engine.
type Env struct {
	// RunID is the value of TestLabel for this test binary.
	RunID string
	// Image is the fixture image.
	Image string
	// Engine is the engine the tests run against, for messages: its
	// version and API version.
	Engine string
	// Private is the test binary's own daemon when EngineEnv names an
	// engine; nil on the engine DOCKER_HOST names.
	Private *Daemon
	root    string
}

// Setup checks that the engine answers, failing loudly if not, and builds
// the fixture image. With EngineEnv set, it then starts a private daemon of
// that engine, moves the image into it and points DOCKER_HOST at it for the
// rest of the test binary: the docker CLI, the healers under test and their
// subprocesses all use it. Call it from TestMain; call Close when done.
func Setup() (*Env, error) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("docker is unreachable, and these tests need the real engine: docker info: %v: %s", err, bytes.TrimSpace(out))
	}
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	e := &Env{RunID: id, Image: "hmd-fixture:test-" + id, root: moduleRoot()}
	if err := e.build(); err != nil {
		return nil, err
	}
	if bin := os.Getenv(EngineEnv); bin != "" {
		if err := e.private(bin); err != nil {
			e.Close()
			return nil, err
		}
	}
	e.Engine, _ = Docker("version", "--format", "Docker {{.Server.Version}} (API {{.Server.APIVersion}}, minimum {{.Server.MinAPIVersion}}; this client {{.Client.APIVersion}})")
	return e, nil
}

// private moves the run onto a private daemon of the engine in bin.
func (e *Env) private(bin string) error {
	if _, err := os.Stat(filepath.Join(bin, "dockerd")); err != nil {
		return fmt.Errorf("%s=%s holds no dockerd (test/engine/build.sh builds one): %w", EngineEnv, bin, err)
	}
	d, err := StartDaemon(bin)
	if err != nil {
		return err
	}
	err = d.Load(e.Image)
	// Only the private daemon keeps it.
	_, _ = Docker("rmi", "-f", e.Image)
	if err != nil {
		return errors.Join(err, d.Close())
	}
	e.Private = d
	return os.Setenv("DOCKER_HOST", d.Host())
}

// moduleRoot finds go.mod upwards from the working directory: tests run in
// their package's directory, tools from the repository's.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func (e *Env) build() error {
	dir, err := os.MkdirTemp("", "hmd-fixture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gobuild := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "fixture"), "./test/fixture")
	gobuild.Dir = e.root
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		return fmt.Errorf("build fixture binary: %v: %s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(e.root, "test", "fixture", "Dockerfile"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	if out, err := Docker("build", "-q", "--label", TestLabel+"="+e.RunID, "-t", e.Image, dir); err != nil {
		return fmt.Errorf("build fixture image: %v: %s", err, out)
	}
	return nil
}

// Close removes every container of this run and the fixture image, and
// stops and sweeps the private daemon.
func (e *Env) Close() error {
	if e.Private != nil {
		return e.Private.Close()
	}
	ids, _ := Docker("ps", "-aq", "--filter", "label="+TestLabel+"="+e.RunID)
	if f := strings.Fields(ids); len(f) > 0 {
		_, _ = Docker(append([]string{"rm", "-f", "-v"}, f...)...)
	}
	_, _ = Docker("rmi", "-f", e.Image)
	return nil
}

// Docker runs the docker CLI and returns its trimmed output.
func Docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// Spec describes one fixture container.
type Spec struct {
	Name   string
	Labels map[string]string
	Env    map[string]string
	// Args are extra docker run arguments.
	Args []string
	// Cmd is the fixture's command, such as receive; none serves.
	Cmd []string
}

// Start starts a fixture container.
func (e *Env) Start(s Spec) (string, error) {
	args := []string{"run", "-d", "--name", s.Name, "--label", TestLabel + "=" + e.RunID}
	for k, v := range s.Labels {
		args = append(args, "--label", k+"="+v)
	}
	for k, v := range s.Env {
		args = append(args, "-e", k+"="+v)
	}
	args = append(args, s.Args...)
	// The private daemon has no bridge, so no default network.
	if e.Private != nil && !slices.ContainsFunc(s.Args, func(a string) bool {
		return a == "--network" || a == "--net" || strings.HasPrefix(a, "--network=") || strings.HasPrefix(a, "--net=")
	}) {
		args = append(args, "--network", "none")
	}
	args = append(args, e.Image)
	args = append(args, s.Cmd...)
	id, err := Docker(args...)
	if err != nil {
		return "", fmt.Errorf("run fixture %s: %w", s.Name, err)
	}
	return id, nil
}

// Run starts a fixture container and removes it when t ends.
func (e *Env) Run(t testing.TB, s Spec) string {
	t.Helper()
	id, err := e.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = Docker("rm", "-f", "-v", id) })
	return id
}

// State is the part of docker inspect that tests look at.
type State struct {
	Status       string
	Running      bool
	ExitCode     int
	StartedAt    time.Time
	RestartCount int
	Health       string
}

// Inspect reads a container's state.
func Inspect(t testing.TB, id string) State {
	t.Helper()
	out, err := Docker("inspect", "--format", "{{json .State}}|{{.RestartCount}}", id)
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	js, rc, _ := strings.Cut(out, "|")
	var raw struct {
		Status    string
		Running   bool
		ExitCode  int
		StartedAt time.Time
		Health    *struct{ Status string }
	}
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		t.Fatalf("inspect %s: %v: %s", id, err, js)
	}
	s := State{Status: raw.Status, Running: raw.Running, ExitCode: raw.ExitCode, StartedAt: raw.StartedAt}
	s.RestartCount, _ = strconv.Atoi(rc)
	if raw.Health != nil {
		s.Health = raw.Health.Status
	}
	return s
}

// Event is one event of the daemon, as `docker events` prints it.
type Event struct {
	ID       string `json:"id"`
	Action   string `json:"Action"`
	TimeNano int64  `json:"timeNano"`
	Actor    struct {
		Attributes map[string]string
	}
}

// Name is the container name of the event.
func (e Event) Name() string { return e.Actor.Attributes["name"] }

// Events records the daemon's events for this run's containers.
type Events struct {
	log *waitlog.Log[Event]
}

// WatchEvents starts recording until t ends.
func (e *Env) WatchEvents(t testing.TB) *Events {
	t.Helper()
	ev, stop, err := e.Stream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return ev
}

// Stream starts recording the daemon's events for this run's containers
// until stop. The daemon's own clock stamps each event.
func (e *Env) Stream() (ev *Events, stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	// since makes the daemon send what happens before the stream is up too.
	now := time.Now()
	since := fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())
	args := []string{"events", "--format", "{{json .}}", "--since", since,
		"--filter", "label=" + TestLabel + "=" + e.RunID, "--filter", "type=container"}
	// Only these: the exec events of every health probe would flood the
	// stream, and the daemon drops events for a reader that falls behind.
	for _, a := range []string{"health_status", "create", "start", "kill", "die", "stop", "restart", "oom", "destroy", "rename"} {
		args = append(args, "--filter", "event="+a)
	}
	cmd := exec.CommandContext(ctx, "docker", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("docker events: %w", err)
	}
	ev = &Events{log: waitlog.New[Event]()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m Event
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			ev.log.Add(m)
		}
	}()
	return ev, func() { cancel(); _ = cmd.Wait(); <-done }, nil
}

// Wait returns the first recorded event matching match, waiting up to d.
func (ev *Events) Wait(t testing.TB, d time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	return ev.WaitNth(t, d, what, 1, match)
}

// WaitNth returns the nth (from 1) recorded event matching match, waiting
// up to d.
func (ev *Events) WaitNth(t testing.TB, d time.Duration, what string, n int, match func(Event) bool) Event {
	t.Helper()
	m, ok := ev.log.WaitNth(d, n, match)
	if !ok {
		t.Fatalf("no %s within %s", what, d)
	}
	return m
}

// WaitFor returns the first recorded event matching match, waiting up to d.
func (ev *Events) WaitFor(d time.Duration, match func(Event) bool) (Event, bool) {
	return ev.log.WaitNth(d, 1, match)
}

// All returns the events recorded so far that match.
func (ev *Events) All(match func(Event) bool) []Event { return ev.log.All(match) }

// Is matches events of container name with action.
func Is(name, action string) func(Event) bool {
	return func(e Event) bool { return e.Name() == name && e.Action == action }
}
