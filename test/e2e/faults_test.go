//go:build faults

// The fault suite (`make faults`): real processes, real engine, and what
// was lost must be nothing.
package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// listening returns the TCP ports pid listens on, and whether it has a
// listening unix socket, read from /proc.
func listening(t *testing.T, pid int) (ports []int, unix []string) {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			x := strings.Fields(line)
			// local_address rem_address st ... inode (10th)
			if len(x) < 10 || x[3] != "0A" || !inodes[x[9]] {
				continue
			}
			_, port, _ := strings.Cut(x[1], ":")
			p, _ := strconv.ParseInt(port, 16, 32)
			ports = append(ports, int(p))
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		x := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; flags 00010000 is __SO_ACCEPTCON
		if len(x) >= 7 && x[3] == "00010000" && inodes[x[6]] {
			path := ""
			if len(x) > 7 {
				path = x[7]
			}
			unix = append(unix, path)
		}
	}
	return ports, unix
}

// Security: the all-in-one healer listens on its HTTP port and nothing
// else; with the port off, on nothing at all.
func TestFaultNoListenerBeyondHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		port int
	}{{"http on", testkit.FreePort(t)}, {"http off", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(healerBin, "--data-dir", t.TempDir(), "--http-port", strconv.Itoa(tc.port), "--container-label", "hmd-none-"+env.RunID)
			stderr := waitlog.Start(t, "healer", cmd)
			deadline := time.Now().Add(wait)
			for !strings.Contains(stderr.String(), "docker connected") {
				if time.Now().After(deadline) {
					t.Fatalf("healer did not start:\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if tc.port != 0 {
				for !strings.Contains(stderr.String(), "http endpoint listening") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			}
			ports, unix := listening(t, cmd.Process.Pid)
			want := []int{}
			if tc.port != 0 {
				want = []int{tc.port}
			}
			if fmt.Sprint(ports) != fmt.Sprint(want) || len(unix) > 0 {
				t.Errorf("listening on TCP %v and unix %v; want TCP %v only", ports, unix, want)
			}
		})
	}
}

// Security: through haproxy configured as the common socket proxies are
// (deploy/socket-proxy/haproxy.cfg), healing works and the healer asks for
// nothing the proxy refuses.
func TestFaultHealsThroughHAProxySocketProxy(t *testing.T) {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is needed (Debian package haproxy; .ci/run installs it)")
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	cmd := exec.Command(hap, "-f", "../../deploy/socket-proxy/haproxy.cfg", "-db")
	cmd.Env = append(os.Environ(), "HMD_PROXY_SOCKET="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy did not make its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The proxy refuses what it should: a list of images is not ours.
	if out, err := exec.Command("docker", "-H", "unix://"+sock, "image", "ls").CombinedOutput(); err == nil {
		t.Fatalf("the proxy let docker image ls through:\n%s", out)
	}

	label := "hmd-haproxy-" + env.RunID
	name := "hmd-haproxy-" + env.RunID
	// Only the healer goes through the proxy; the test's docker CLI does not.
	orig, had := os.LookupEnv("DOCKER_HOST")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	h := startHealer(t, t.TempDir(), "--container-label", label)
	if had {
		os.Setenv("DOCKER_HOST", orig)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms"}})
	h.got.wait(t, wait, name+" healed through haproxy", kindOf(events.RestartSucceeded, name))
	h.stop()

	var log []string
	collect := time.After(2 * time.Second)
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			log = append(log, l)
		case <-collect:
			break loop
		}
	}
	var refused, restarts int
	for _, l := range log {
		if strings.Contains(l, " 403 ") && !strings.Contains(l, "/images/json") {
			refused++
			t.Errorf("the healer asked for something the proxy refuses: %s", l)
		}
		if strings.Contains(l, "/restart") && strings.Contains(l, " 204 ") {
			restarts++
		}
	}
	if restarts != 1 {
		t.Errorf("haproxy logged %d restarts, want 1:\n%s", restarts, strings.Join(log, "\n"))
	}
}

// Healer crash: under a restart storm the healer is kill -9'd and started
// again on its data dir. No container gets more restarts than its frame
// allows, none is left unhealed, and each container's history counts its
// restarts without a gap or a fork.
func TestFaultHealerKilledInAStorm(t *testing.T) {
	const n, limit = 8, 2
	label := "hmd-storm-" + env.RunID
	data := t.TempDir()
	dockerEvents := env.WatchEvents(t)
	policy := []string{"--container-label", label, "--seconds-between-restarts", "1", "--frame-size", "600",
		"--max-restarts-in-frame", strconv.Itoa(limit), "--seconds-between-next-frame", "600"}
	first := exec.Command(healerBin, append([]string{"--data-dir", data, "--http-port", "0"}, policy...)...)
	first.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })
	var names []string
	for i := range n {
		name := fmt.Sprintf("hmd-storm-%d-%s", i, env.RunID)
		names = append(names, name)
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: crashLooping})
	}
	// Kill it once the storm is under way: the first container's first restart.
	dockerEvents.Wait(t, wait, "the storm's first restart", dockertest.Is(names[0], "kill"))
	if err := first.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	killedAt := len(dockerEvents.All(func(e dockertest.Event) bool { return e.Action == "kill" && strings.HasPrefix(e.Name(), "hmd-storm-") }))
	t.Logf("healer killed after %d restarts in the storm", killedAt)

	h := startHealer(t, data, policy...)
	for _, name := range names {
		h.got.wait(t, 2*wait, name+" at its frame limit", skipped(name, heal.ReasonFrameLimit))
	}
	h.stop()
	hist := history(t, data)
	for _, name := range names {
		if k := len(kills(dockerEvents, name)); k != limit {
			t.Errorf("%s was restarted %d times across the crash; its frame allows %d", name, k, limit)
		}
		var counts []int
		for _, e := range hist {
			if e.Kind() == events.RestartRequested && e.Subject == name {
				counts = append(counts, e.Data.FrameRestarts)
			}
		}
		if fmt.Sprint(counts) != fmt.Sprint([]int{1, 2}) {
			t.Errorf("%s's history counts its restarts %v; want [1 2], no gap, no fork", name, counts)
		}
	}
}
