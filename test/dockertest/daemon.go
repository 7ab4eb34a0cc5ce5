package dockertest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// EngineEnv names the directory of the Docker engine (dockerd, containerd,
// runc) the tests run against in a private daemon of their own, such as the
// Docker 29 that test/engine/build.sh builds. Unset, the tests use the engine
// DOCKER_HOST names, and a private daemon (of the fault suite) runs the
// dockerd on PATH.
const EngineEnv = "HMD_TEST_ENGINE"

// RunDirEnv names a directory the private daemons of a test run keep their
// state in (test/engine/run.sh makes one per run and sweeps it afterwards,
// even when the tests crash). Unset, the system's temp directory.
const RunDirEnv = "HMD_TEST_RUNDIR"

// Daemon is a dockerd of the caller's own, which it can kill: its own
// network namespace, data and exec roots, socket and containerd, no bridge,
// no iptables, the vfs storage driver.
// Not live-restore: Docker 20.10 does not run health checks again for
// containers it restored live (Docker 29 does), so a restored container
// would never turn unhealthy on 20.10; without it, the daemon starts its
// restart-policy containers afresh when it comes back, and their checks run.
type Daemon struct {
	// Dir holds everything of the daemon's; Sock is its API socket.
	Dir, Sock string
	bin       string
	bridgeOK  func() error
	cmd       *exec.Cmd
	log       *os.File
	waited    chan struct{}
}

// StartDaemon starts a private dockerd from bin, a directory holding dockerd
// and the containerd and runc it is to use; "" runs dockerd from PATH.
// Close it when done.
func StartDaemon(bin string) (*Daemon, error) {
	parent := os.Getenv(RunDirEnv)
	if parent == "" {
		parent = os.TempDir()
	}
	// Short: containerd's socket path under the exec root must fit the
	// 108 bytes of a unix socket address.
	dir, err := os.MkdirTemp(parent, "hmdd")
	if err != nil {
		return nil, fmt.Errorf("private dockerd: %w", err)
	}
	if n := len(dir) + len("/x/containerd/containerd.sock.ttrpc"); n > 100 {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("private dockerd: its directory %s is too long for containerd's socket (%d bytes); set %s to a short path", dir, n, RunDirEnv)
	}
	d := &Daemon{Dir: dir, Sock: filepath.Join(dir, "d.sock"), bin: bin, bridgeOK: bridgeGuard()}
	if err := d.Start(); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// Host is the daemon's address for DOCKER_HOST and docker -H.
func (d *Daemon) Host() string { return "unix://" + d.Sock }

// Start starts the daemon on its state, waiting until it answers.
func (d *Daemon) Start() error {
	var err error
	d.log, err = os.OpenFile(filepath.Join(d.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("private dockerd: %w", err)
	}
	// Its own config file: the machine's /etc/docker/daemon.json would
	// clash with these flags. vfs: the fixture image is tiny, and vfs works
	// on any filesystem the temp dir is on.
	cfg := filepath.Join(d.Dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"storage-driver": "vfs"}`), 0o644); err != nil {
		return fmt.Errorf("private dockerd: %w", err)
	}
	dockerd := "dockerd"
	environ := os.Environ()
	if d.bin != "" {
		dockerd = filepath.Join(d.bin, "dockerd")
		// dockerd starts containerd from PATH, and containerd runc.
		environ = append(environ, "PATH="+d.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	// dockerd uses a containerd listening on the default socket rather
	// than start its own, and a system one would not be the engine's own.
	if d.bin != "" {
		if _, err := os.Stat("/run/containerd/containerd.sock"); err == nil {
			return errors.New("private dockerd: a containerd listens on /run/containerd/containerd.sock, and dockerd would use it instead of the engine's own; run the tests where none does")
		}
	}
	// In a network namespace of its own: a dockerd started with
	// --bridge=none deletes the docker0 bridge it finds, and in the
	// machine's namespace that is the real engine's.
	d.cmd = exec.Command("unshare", "--net", dockerd, "--config-file", cfg, "--data-root", filepath.Join(d.Dir, "r"), "--exec-root", filepath.Join(d.Dir, "x"),
		"--pidfile", filepath.Join(d.Dir, "pid"), "-H", d.Host(), "--bridge=none", "--iptables=false", "--ip6tables=false",
		"--containerd-namespace", "hmdtest", "--containerd-plugins-namespace", "hmdtest-plugins", "--cgroup-parent", cgroupParent(d.Dir))
	d.cmd.Env = environ
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	// Dies with the test binary; containerd dies with it in turn.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	waited := make(chan struct{})
	d.waited = waited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(waited) }(d.cmd)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := d.Docker("version"); err == nil {
			return nil
		}
		select {
		case <-waited:
			return fmt.Errorf("private dockerd exited on start:\n%s", d.LogTail(40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private dockerd not up within 60s:\n%s", d.LogTail(40))
		}
	}
}

// Kill kills the daemon (its containerd dies with it; the containers and
// their shims stay, as after a crash).
func (d *Daemon) Kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		<-d.waited
		d.cmd = nil
	}
	if d.log != nil {
		_ = d.log.Close()
		d.log = nil
	}
}

// Close removes the daemon's containers, stops it, and sweeps up what it
// left: processes, mounts and its directory. It fails if the daemon took the
// real engine's bridge with it.
func (d *Daemon) Close() error {
	if d.cmd != nil {
		if out, _ := d.Docker("ps", "-aq"); out != "" {
			_, _ = d.Docker(append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...)
		}
		// A stopped daemon stops its containerd and leaves less behind.
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.waited:
		case <-time.After(15 * time.Second):
		}
	}
	d.Kill()
	return errors.Join(Sweep(d.Dir), d.bridgeOK())
}

// Docker runs the docker CLI against the daemon.
func (d *Daemon) Docker(args ...string) (string, error) {
	return Docker(append([]string{"-H", d.Host()}, args...)...)
}

// Load copies an image of the engine DOCKER_HOST names into the daemon,
// which has no registry to pull from.
func (d *Daemon) Load(image string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	save := exec.CommandContext(ctx, "docker", "save", image)
	load := exec.CommandContext(ctx, "docker", "-H", d.Host(), "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	var saveErr, loadOut strings.Builder
	save.Stderr = &saveErr
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := save.Start(); err != nil {
		return fmt.Errorf("docker save %s: %w", image, err)
	}
	if err := load.Run(); err != nil {
		_ = save.Wait()
		return fmt.Errorf("docker load %s into the private daemon: %w: %s %s", image, err, loadOut.String(), saveErr.String())
	}
	if err := save.Wait(); err != nil {
		return fmt.Errorf("docker save %s: %w: %s", image, err, saveErr.String())
	}
	return nil
}

// LogTail is the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Sweep kills every process a private daemon under dir left behind (its
// containerd and shims: started from or working in dir; its containers: in
// its cgroup parent), unmounts what is mounted under it, and removes its
// cgroups and dir. It touches nothing else, so runs beside it are safe.
func Sweep(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if dir == "/" || len(dir) < len("/tmp/x") {
		return fmt.Errorf("sweep: refusing to sweep %q", dir)
	}
	under := func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	// The containers: in the cgroup parent of dir's daemon, or of the
	// daemons in dir (a run directory).
	parents := []string{cgroupParent(dir)}
	if subs, err := filepath.Glob(filepath.Join(dir, "hmdd*")); err == nil {
		for _, s := range subs {
			parents = append(parents, cgroupParent(s))
		}
	}
	for range 3 {
		procs, _ := os.ReadDir("/proc")
		killed := 0
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || pid == os.Getpid() || pid == os.Getppid() {
				continue
			}
			// A zombie is dead already; killing it again counts nothing.
			if stat, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "stat")); zombie(stat) {
				continue
			}
			cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
			cwd, _ := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
			cgroup, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cgroup"))
			if strings.Contains(string(cmdline), dir+"/") || under(cwd) || slices.ContainsFunc(parents, func(c string) bool {
				return strings.Contains(string(cgroup), ":/"+c+"/")
			}) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
		if killed == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		var mounts []string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && under(f[1]) {
				mounts = append(mounts, f[1])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	// The emptied cgroups, in every hierarchy (v1) or the one (v2): one
	// goes once its killed processes are reaped.
	for _, c := range parents {
		cgs, _ := filepath.Glob("/sys/fs/cgroup/" + c)
		more, _ := filepath.Glob("/sys/fs/cgroup/*/" + c)
		for _, cg := range append(cgs, more...) {
			for deadline := time.Now().Add(5 * time.Second); ; {
				kids, _ := os.ReadDir(cg)
				for _, k := range kids {
					if k.IsDir() {
						_ = syscall.Rmdir(filepath.Join(cg, k.Name()))
					}
				}
				if syscall.Rmdir(cg) == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sweep: %s left behind: %w", dir, err)
	}
	return nil
}

// zombie tells from /proc/PID/stat whether the process is a zombie.
func zombie(stat []byte) bool {
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && strings.HasPrefix(rest, "Z")
}

// cgroupParent is the cgroup the private daemon in dir puts its containers
// in: named after dir, so a sweep finds them even after the daemon is gone
// (their root is in a mount namespace of their own, and says nothing).
func cgroupParent(dir string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(dir))
	return fmt.Sprintf("hmdtest-%016x", h.Sum64())
}

// bridgeGuard reports, when called at the end, whether the private daemon
// took the real engine's docker0 bridge with it.
func bridgeGuard() func() error {
	_, before := net.InterfaceByName("docker0")
	return func() error {
		if _, err := net.InterfaceByName("docker0"); before == nil && err != nil {
			return fmt.Errorf("the private dockerd took the real engine's docker0 with it: %w", err)
		}
		return nil
	}
}
