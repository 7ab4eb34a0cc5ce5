package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// runHealer starts the healer binary and returns once <prefix>/readyz
// says 200.
func runHealer(t *testing.T, dataDir string, port int, prefix string, extra ...string) {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--http-port", fmt.Sprint(port), "--http-prefix", prefix, "--container-label", "hmd-none-" + env.RunID}, extra...)
	stderr := startProcess(t, healerBin, args, os.Environ())
	url := fmt.Sprintf("http://127.0.0.1:%d%s/readyz", port, prefix)
	testkit.Eventually(t, 30*time.Second, "the healer to be ready", func() (string, bool) {
		resp, err := http.Get(url)
		if err != nil {
			return fmt.Sprintf("%v\n%s", err, stderr.String()), false
		}
		resp.Body.Close()
		return fmt.Sprintf("%s\n%s", resp.Status, stderr.String()), resp.StatusCode == http.StatusOK
	})
}

// (e) A second healer on a locked data dir exits with a clear error and
// leaves the first one and its store alone.
func TestSecondHealerOnLockedDataDirFails(t *testing.T) {
	data := t.TempDir()
	port := testkit.FreePort(t)
	runHealer(t, data, port, "")
	before := snapshot(t, data)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, healerBin, "--data-dir", data, "--http-port", fmt.Sprint(testkit.FreePort(t)))
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second healer: err %v, want exit code 1; output:\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("data dir is locked by another healer")) || !bytes.Contains(out, []byte(data)) {
		t.Errorf("second healer's message does not say the data dir is locked:\n%s", out)
	}
	if after := snapshot(t, data); after != before {
		t.Errorf("second healer changed the data dir:\nbefore %s\nafter  %s", before, after)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first healer not ready after the second one tried: %v", err)
	}
	resp.Body.Close()
}

// snapshot lists the data dir's files with sizes and modification times.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			fmt.Fprintf(&b, "%s:%d:%d ", strings.TrimPrefix(p, dir), fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// (f) Bad configuration exits with code 2 and one line naming the key, the
// value and what was expected.
func TestBadConfigurationExitsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownKey, []byte("http_port: 8380\nrestart_everything: yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badValue := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badValue, []byte("max_concurrent_restarts: many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"port not a number", []string{"HMD_HTTP_PORT=abc"}, nil, []string{"http_port", "HMD_HTTP_PORT", `"abc"`, "integer"}},
		{"unknown key in file", nil, []string{"--config", unknownKey}, []string{"restart_everything", unknownKey, "known setting"}},
		{"bad value in file", nil, []string{"--config", badValue}, []string{"max_concurrent_restarts", `"many"`, "integer"}},
		{"bad duration flag", nil, []string{"--stop-timeout", "soon"}, []string{"stop_timeout", "--stop-timeout", `"soon"`, "duration"}},
		{"bad log level", []string{"HMD_LOG_LEVEL=loud"}, nil, []string{"log_level", `"loud"`, "debug, info, warn, error"}},
		{"unknown flag", nil, []string{"--restart-everything"}, []string{"unknown flag", "--restart-everything"}},
		{"missing file", nil, []string{"--config", filepath.Join(dir, "nope.yaml")}, []string{"config", "nope.yaml"}},
		{"listener without auth", []string{"HMD_NATS_LISTEN=127.0.0.1:4222"}, nil, []string{"nats_listen", "nats_user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(healerBin, append(tt.args, "--data-dir", filepath.Join(dir, "data"))...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("err %v, want exit code 2; stderr:\n%s", err, stderr.String())
			}
			lines := nonEmptyLines(stderr.String())
			if len(lines) != 1 {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("message %q lacks %q", lines[0], w)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("a data dir was created despite the bad configuration")
			}
		})
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// healer healthcheck exits 0 against a live healer and 1 without one.
func TestHealthcheckCommand(t *testing.T) {
	port := testkit.FreePort(t)
	runHealer(t, t.TempDir(), port, "/hmd")
	check := func(port int) (int, string) {
		cmd := exec.Command(healerBin, "healthcheck", "--http-port", fmt.Sprint(port), "--http-prefix", "/hmd")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := check(port); code != 0 {
		t.Errorf("healthcheck against a live healer: exit %d: %s", code, out)
	}
	if code, out := check(testkit.FreePort(t)); code != 1 || !strings.Contains(out, "healthcheck") {
		t.Errorf("healthcheck with nothing listening: exit %d: %s", code, out)
	}
}

// startProcess runs bin with args and environ until the test ends, logging
// its stderr if the test failed. It dies with the test binary: one that
// outlived a crashed test would act on the next test's containers.
func startProcess(t *testing.T, bin string, args, environ []string) *waitlog.Buffer {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	return waitlog.Start(t, bin, cmd)
}
