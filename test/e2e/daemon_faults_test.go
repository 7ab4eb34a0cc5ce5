//go:build faults

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// privateDaemon is a dockerd of the test's own, which it can kill: its own
// network namespace, data and exec roots, socket and containerd, no bridge,
// no iptables.
// Not live-restore: Docker 20.10 does not run health checks again for
// containers it restored live, so a restored container never turns
// unhealthy; without it, the daemon starts its restart-policy containers
// afresh when it comes back, and their checks run.
type privateDaemon struct {
	t    *testing.T
	dir  string
	sock string
	cmd  *exec.Cmd
	log  *os.File
}

func startPrivateDaemon(t *testing.T) *privateDaemon {
	t.Helper()
	// Short: containerd's socket path under the exec root must fit.
	dir, err := os.MkdirTemp("", "hmdd")
	if err != nil {
		t.Fatal(err)
	}
	d := &privateDaemon{t: t, dir: dir, sock: filepath.Join(dir, "d.sock")}
	_, bridgeErr := net.InterfaceByName("docker0")
	t.Cleanup(func() {
		// The real engine's bridge must outlive the private daemon.
		if _, err := net.InterfaceByName("docker0"); bridgeErr == nil && err != nil {
			t.Errorf("the private dockerd took the real engine's docker0 with it: %v", err)
		}
	})
	t.Cleanup(func() {
		if d.cmd != nil {
			if out, _ := d.docker("ps", "-aq"); out != "" {
				_, _ = d.docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
			}
		}
		d.kill()
		// What a killed daemon leaves: its containerd and shims, and mounts.
		_ = exec.Command("pkill", "-9", "-f", dir).Run()
		if b, err := os.ReadFile("/proc/mounts"); err == nil {
			var mounts []string
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) {
					mounts = append(mounts, f[1])
				}
			}
			for i := len(mounts) - 1; i >= 0; i-- {
				_ = exec.Command("umount", "-l", mounts[i]).Run()
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("private daemon dir left behind: %v", err)
		}
	})
	d.start()
	return d
}

func (d *privateDaemon) host() string { return "unix://" + d.sock }

func (d *privateDaemon) start() {
	d.t.Helper()
	var err error
	d.log, err = os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	// Its own config file: the machine's /etc/docker/daemon.json would
	// clash with these flags. vfs: the fixture image is tiny, and vfs works
	// on any filesystem the temp dir is on.
	cfg := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"storage-driver": "vfs"}`), 0o644); err != nil {
		d.t.Fatal(err)
	}
	// In a network namespace of its own: a dockerd started with
	// --bridge=none deletes the docker0 bridge it finds, and in the
	// machine's namespace that is the real engine's.
	d.cmd = exec.Command("unshare", "--net", "dockerd", "--config-file", cfg, "--data-root", filepath.Join(d.dir, "r"), "--exec-root", filepath.Join(d.dir, "x"),
		"--pidfile", filepath.Join(d.dir, "pid"), "-H", d.host(), "--bridge=none", "--iptables=false", "--ip6tables=false",
		"--containerd-namespace", "hmdtest", "--containerd-plugins-namespace", "hmdtest-plugins")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dockerd: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("docker", "-H", d.host(), "info").Run() != nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			d.t.Fatalf("private dockerd not up within 60s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *privateDaemon) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		d.cmd = nil
	}
	if d.log != nil {
		_ = d.log.Close()
	}
}

func (d *privateDaemon) docker(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", d.host()}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func readyz(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Docker daemon restart: the daemon is killed while a labelled container
// is about to turn unhealthy, and comes back after outage. The container
// is healed within 5 s of its return; readiness is 503 while it is gone
// and 200 after; docker_lost and docker_connected are published.
func TestFaultDockerDaemonRestart(t *testing.T) {
	for _, outage := range []time.Duration{3 * time.Second, 60 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) { daemonRestart(t, outage) })
	}
}

func daemonRestart(t *testing.T, outage time.Duration) {
	d := startPrivateDaemon(t)
	save := exec.Command("sh", "-c", fmt.Sprintf("docker save %s | docker -H %s load", env.Image, d.host()))
	if out, err := save.CombinedOutput(); err != nil {
		t.Fatalf("load the fixture image into the private daemon: %v\n%s", err, out)
	}
	label := "hmd-daemon-" + env.RunID
	name := "hmd-daemon-" + env.RunID
	port := freePort(t)
	t.Setenv("DOCKER_HOST", d.host())
	h := startHealer(t, t.TempDir(), "--container-label", label, "--http-port", strconv.Itoa(port), "--docker-ping-interval", "500ms")
	os.Unsetenv("DOCKER_HOST")
	h.got.wait(t, wait, "docker connected", func(e events.Event) bool { return e.Kind() == events.DockerConnected })

	// It turns unhealthy 2 s after every start: the daemon dies before
	// the first time, and starts it again (restart policy) on its return.
	if out, err := d.docker("run", "-d", "--name", name, "--network", "none", "--label", label+"=true", "--restart", "always",
		"-e", "FIXTURE_SICK_RUNS=0", "-e", "FIXTURE_UNHEALTHY_AFTER=2s",
		"--health-interval", "100ms", "--health-retries", "1", env.Image); err != nil {
		t.Fatalf("run on the private daemon: %v\n%s", err, out)
	}
	d.kill()
	h.got.wait(t, wait, "docker lost", func(e events.Event) bool { return e.Kind() == events.DockerLost })
	if code := readyz(port); code != http.StatusServiceUnavailable {
		t.Errorf("readyz while the daemon is gone: %d, want 503", code)
	}
	time.Sleep(outage) // the outage itself: the fault being tested
	d.start()
	back := time.Now()
	h.got.wait(t, wait, "docker connected again", func(e events.Event) bool {
		return e.Kind() == events.DockerConnected && e.Time.After(back.Add(-time.Second))
	})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")
			t.Logf("private daemon's containers:\n%s", out)
			b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			t.Logf("dockerd log (tail):\n%s", tail(string(b), 30))
		}
	})
	ok := h.got.wait(t, wait, name+" healed after the daemon's return", kindOf(events.RestartSucceeded, name))
	if took := ok.Time.Sub(back); took > 5*time.Second {
		t.Errorf("healed %s after the daemon's return, want within 5 s", took)
	} else {
		t.Logf("healed %s after the daemon's return (outage %s)", took.Round(time.Millisecond), outage)
	}
	deadline := time.Now().Add(wait)
	for readyz(port) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not come back to 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = d.docker("rm", "-f", name)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
