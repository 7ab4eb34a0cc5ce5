// Command record records the container events HealMyDocker reads, exactly as
// an engine sends them, for internal/docker's golden tests of Convert. It
// runs the fixture through create, start, health_status (healthy, then
// unhealthy), rename, restart, kill, OOM kill and destroy, then reads those
// events back from /events at the given API version with the healer's
// filters, and writes them as JSON lines.
//
//	go run ./test/engine/record -o internal/docker/testdata/events/20.10-api1.41.jsonl
//	HMD_TEST_ENGINE=DIR go run ./test/engine/record -api 1.51 -o ...
//
// The engine is the one DOCKER_HOST names, or with HMD_TEST_ENGINE a private
// daemon of that engine (test/dockertest). -api "" asks at the engine's own
// API version.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/test/dockertest"
)

// The actions the healer's watcher subscribes to (internal/docker).
var actions = []string{"health_status", "start", "die", "kill", "stop", "oom", "destroy", "create", "rename", "restart"}

func main() {
	out := flag.String("o", "", "write the events here (JSON lines)")
	api := flag.String("api", "", "API version to ask at; empty: the engine's own")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "record: -o FILE is required")
		os.Exit(2)
	}
	if err := run(*out, *api); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
}

func run(out, api string) (err error) {
	env, err := dockertest.Setup()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	fmt.Fprintln(os.Stderr, "record: engine", env.Engine)
	if api == "" {
		if api, err = dockertest.Docker("version", "--format", "{{.Server.APIVersion}}"); err != nil {
			return err
		}
	}
	since := time.Now()
	name := "hmd-rec-" + env.RunID
	labels := map[string]string{"healme": "true", "com.example.team": "web"}
	if _, err := env.Start(dockertest.Spec{Name: name, Labels: labels, Env: map[string]string{"FIXTURE_UNHEALTHY_AFTER": "2s"},
		Args: []string{"--health-interval", "300ms", "--health-retries", "1"}}); err != nil {
		return err
	}
	if err := waitFor(name, "{{.State.Health.Status}}", "unhealthy"); err != nil {
		return err
	}
	steps := [][]string{
		{"rename", name, name + "-b"},
		{"restart", "-t", "1", name + "-b"},
		{"kill", name + "-b"},
		{"rm", "-f", name + "-b"},
	}
	for _, s := range steps {
		if _, err := dockertest.Docker(s...); err != nil {
			return err
		}
	}
	oom := name + "-oom"
	if _, err := env.Start(dockertest.Spec{Name: oom, Labels: labels, Cmd: []string{"alloc"},
		Args: []string{"--memory", "32m", "--memory-swap", "32m", "--no-healthcheck"}}); err != nil {
		return err
	}
	if err := waitFor(oom, "{{.State.Status}}", "exited"); err != nil {
		return err
	}
	if st, _ := dockertest.Docker("inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", oom); st != "true 137" {
		fmt.Fprintf(os.Stderr, "record: %s was not OOM-killed (OOMKilled, exit code: %s); its events are recorded as they are\n", oom, st)
	}
	if _, err := dockertest.Docker("rm", "-f", oom); err != nil {
		return err
	}
	until := time.Now().Add(time.Second)
	time.Sleep(time.Until(until))
	return record(out, api, env.RunID, since, until)
}

// waitFor polls docker inspect until format gives want.
func waitFor(name, format, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, _ := dockertest.Docker("inspect", "--format", format, name)
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s is %q after 60s, want %q", name, format, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record reads the past events of this run at API version api and writes
// them unchanged.
func record(out, api, runID string, since, until time.Time) error {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return fmt.Errorf("DOCKER_HOST %s: only unix sockets are supported", host)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	filters, _ := json.Marshal(map[string][]string{"type": {"container"}, "label": {dockertest.TestLabel + "=" + runID}, "event": actions})
	q := url.Values{
		"since":   {fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())},
		"until":   {fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond())},
		"filters": {string(filters)},
	}
	resp, err := hc.Get("http://docker/v" + api + "/events?" + q.Encode())
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("events at API %s: %s: %s", api, resp.Status, b)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	// One event per line, as sent: the decoder only splits the stream.
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	n := 0
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			_ = f.Close()
			return fmt.Errorf("events stream: %w", err)
		}
		if _, err := fmt.Fprintf(f, "%s\n", raw); err != nil {
			_ = f.Close()
			return err
		}
		n++
	}
	fmt.Fprintf(os.Stderr, "record: %d events at API %s into %s\n", n, api, out)
	return f.Close()
}
