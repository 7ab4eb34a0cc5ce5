package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/healmydocker/healmydocker/internal/bus"
	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// proc is a healer process against a fake engine.
type proc struct {
	cmd  *exec.Cmd
	port int
	fake *fakedocker.Server
}

// startOnFake starts the healer against a fake engine holding n selected
// containers, the first sick of them unhealthy and the rest healthy, on
// dataDir.
func startOnFake(healerBin, dir, dataDir string, n, sick int) (*proc, time.Time, error) {
	fake, err := startFake(dir, n, sick)
	if err != nil {
		return nil, time.Time{}, err
	}
	port, err := testkit.PickPort()
	if err != nil {
		_ = fake.Close()
		return nil, time.Time{}, err
	}
	p := &proc{port: port, fake: fake}
	p.cmd = exec.Command(healerBin)
	p.cmd.Env = append(os.Environ(), "DOCKER_HOST="+fake.Host(), "HMD_DATA_DIR="+dataDir, "HMD_HTTP_PORT="+strconv.Itoa(p.port),
		"HMD_HOST_NAME=bench", "HMD_LOG_LEVEL=warn")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := p.cmd.Start(); err != nil {
		_ = fake.Close()
		return nil, time.Time{}, err
	}
	return p, started, nil
}

// startFake starts a fake engine holding n selected containers, the first
// sick of them unhealthy and the rest healthy.
func startFake(dir string, n, sick int) (*fakedocker.Server, error) {
	fake, err := fakedocker.Start(dir)
	if err != nil {
		return nil, err
	}
	for i := range n {
		h := "healthy"
		if i < sick {
			h = "unhealthy"
		}
		fake.Add(fakedocker.Container{ID: fmt.Sprintf("c%011d", i), Name: fmt.Sprintf("svc-%d", i), Running: true, Health: h, Labels: map[string]string{"healme": "true"}})
	}
	return fake, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	_ = p.fake.Close()
}

// ready waits for /readyz 200 and returns when it came.
func (p *proc) ready(d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("not ready within %s: %v", d, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rss is the process's resident set in bytes.
func (p *proc) rss() int64 { return p.status("VmRSS:") }

// status reads a kB field of /proc/PID/status, in bytes.
func (p *proc) status(field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// cpu is the process's user+system time.
func (p *proc) cpu() time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// announce has the fake say every container started and is healthy, so
// the healer and its status view hold each one.
func announce(fake *fakedocker.Server, n int) {
	for i := range n {
		id := fmt.Sprintf("c%011d", i)
		fake.Emit(id, events.ActionStart, nil)
		fake.Emit(id, events.ActionHealthStatusHealthy, nil)
	}
}

// footprint reports idle memory, idle CPU, startup and scale on the fake
// engine (the real one here cannot hold a thousand containers).
func footprint(healerBin string, idle time.Duration, sizes []int) (string, error) {
	dir, err := os.MkdirTemp("", "hmdbench-footprint-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	b.WriteString("\n## Footprint (fake engine)\n\nThe healer process against the fake Engine API, each container started and healthy (its events seen). RSS after the events settled; CPU over an idle window, scaled to an hour.\n\n")
	b.WriteString("RSS is VmRSS; of it, anonymous memory (heap, stacks, the store's buffers) and pages of the binary itself, which are clean, shared and reclaimable (the kernel maps a binary's cached pages around each page fault).\n\n")
	fmt.Fprintf(&b, "| watched containers | RSS | of it anonymous | of it the binary's pages | CPU idle (per hour, measured over %s) |\n|---|---|---|---|---|\n", idle)
	var rss0 int64
	for _, n := range sizes {
		sub := filepath.Join(dir, fmt.Sprintf("fp-%d", n))
		_ = os.MkdirAll(sub, 0o755)
		p, _, err := startOnFake(healerBin, sub, filepath.Join(sub, "data"), n, 0)
		if err != nil {
			return "", err
		}
		if _, err := p.ready(time.Minute); err != nil {
			p.stop()
			return "", err
		}
		announce(p.fake, n)
		time.Sleep(3 * time.Second)
		c0 := p.cpu()
		time.Sleep(idle)
		cpu := p.cpu() - c0
		rss := p.rss()
		anon, file := p.status("RssAnon:"), p.status("RssFile:")
		p.stop()
		if n == sizes[0] {
			rss0 = rss
		}
		perHour := time.Duration(float64(cpu) * float64(time.Hour) / float64(idle))
		fmt.Fprintf(&b, "| %d | %.1f MB | %.1f MB | %.1f MB | %s |\n", n, float64(rss)/1e6, float64(anon)/1e6, float64(file)/1e6, perHour.Round(10*time.Millisecond))
		if n > sizes[0] && n == sizes[len(sizes)-1] {
			fmt.Fprintf(&b, "\nMemory per watched container (%d against %d): %.1f KB. Targets: ≤ 5 KB per container, RSS ≤ 80 MB at 10,000, ≤ 30 MB at 100.\n", n, sizes[0], float64(rss-rss0)/float64(n-sizes[0])/1e3)
		}
	}

	return b.String(), nil
}

// startup reports exec to /readyz 200, empty, and with 100,000 events in
// the history and the states folded from them.
func startup(healerBin string) (string, error) {
	dir, err := os.MkdirTemp("", "hmdbench-startup-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	b.WriteString("\n## Startup\n\nFrom exec to `/readyz` 200 (fake engine, no containers). The history holds 2,000 containers × 50 restart decisions = 100,000 events (the default keeps 50 per container) and the state bucket each container's folded state, as the healer writes them; start-up reads the 2,000 states, not the history. The events stream holds the same 100,000. ")
	fmt.Fprintf(&b, "The store re-reads at start the messages of its de-duplication window (%s), so a start right after the 100,000 were written pays for all of them; the usual start, longer than that after the last events, does not.\n\n| store | ready after (median of 5) | min–max |\n|---|---|---|\n", bus.DedupeWindow)
	starts := func(label, data string) error {
		var took []time.Duration
		for r := range 5 {
			sub := filepath.Join(dir, fmt.Sprintf("su-%d", r))
			_ = os.MkdirAll(sub, 0o755)
			p, started, err := startOnFake(healerBin, sub, data, 0, 0)
			if err != nil {
				return err
			}
			at, err := p.ready(time.Minute)
			p.stop()
			if err != nil {
				return err
			}
			took = append(took, at.Sub(started))
		}
		slices.Sort(took)
		fmt.Fprintf(&b, "| %s | %s | %s–%s |\n", label, took[len(took)/2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		return nil
	}
	if err := starts("empty", filepath.Join(dir, "startup-empty")); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "startup-full")
	if err := fillHistory(data, 2000, 50, true); err != nil {
		return "", fmt.Errorf("fill history: %w", err)
	}
	filled := time.Now()
	if err := starts("100,000 events, started at once (all in the de-duplication window)", data); err != nil {
		return "", err
	}
	time.Sleep(time.Until(filled.Add(bus.DedupeWindow + time.Second)))
	if err := starts("100,000 events", data); err != nil {
		return "", err
	}
	// A data dir of the previous version (history, no states): the first
	// start folds the whole history once and stores the states.
	old := filepath.Join(dir, "startup-old")
	if err := fillHistory(old, 2000, 50, false); err != nil {
		return "", fmt.Errorf("fill history: %w", err)
	}
	time.Sleep(bus.DedupeWindow + time.Second)
	var took []time.Duration
	for r := range 2 {
		sub := filepath.Join(dir, fmt.Sprintf("su-old-%d", r))
		_ = os.MkdirAll(sub, 0o755)
		p, started, err := startOnFake(healerBin, sub, old, 0, 0)
		if err != nil {
			return "", err
		}
		at, err := p.ready(time.Minute)
		p.stop()
		if err != nil {
			return "", err
		}
		took = append(took, at.Sub(started))
	}
	fmt.Fprintf(&b, "\nA data dir of the previous version (the same history, no states): the first start folds the whole history once and stores the states, ready after %s; the next start reads the states, ready after %s.\n", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
	return b.String(), nil
}

// scale reports the reconcile of 10,000 containers at start, 1,000 of
// them unhealthy, and then 1,000 flapping at once.
func scale(healerBin string) (string, error) {
	dir, err := os.MkdirTemp("", "hmdbench-scale-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var b strings.Builder
	sub := filepath.Join(dir, "scale")
	_ = os.MkdirAll(sub, 0o755)
	const total, sick = 10000, 1000
	p, started, err := startOnFake(healerBin, sub, filepath.Join(sub, "data"), total, sick)
	if err != nil {
		return "", err
	}
	defer p.stop()
	fake := p.fake
	reconciled, err := waitCalls(fake, sick, time.Minute)
	if err != nil {
		return "", fmt.Errorf("scale reconcile: %w", err)
	}
	b.WriteString("\n## Scale (fake engine)\n\n")
	fmt.Fprintf(&b, "- Reconcile at start: %d containers, %d of them unhealthy: every unhealthy one restarted %s after exec.\n", total, sick, reconciled.Sub(started).Round(time.Millisecond))
	// Flap: the healthy 1,000 after them turn unhealthy at once.
	lat, err := flap(fake, sick, 2*sick)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "- 1,000 containers turning unhealthy at once, among 10,000: from each unhealthy event to its restart call reaching the engine, p50 %s, p90 %s, max %s.\n", ms(percentile(lat, .5)), ms(percentile(lat, .9)), ms(percentile(lat, 1)))
	return b.String(), nil
}

// waitCalls waits until the fake has had n restart calls.
func waitCalls(fake *fakedocker.Server, n int, d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	for {
		c := 0
		for _, x := range fake.Calls() {
			if strings.HasPrefix(x, "restart ") {
				c++
			}
		}
		if c >= n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d restarts", c, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// flap turns containers [from, to) unhealthy at once and returns, for
// each, the time until the fake saw its restart call.
func flap(fake *fakedocker.Server, from, to int) ([]time.Duration, error) {
	before := len(fake.Calls())
	emitted := make(map[string]time.Time, to-from)
	var mu sync.Mutex
	for i := from; i < to; i++ {
		id := fmt.Sprintf("c%011d", i)
		mu.Lock()
		emitted[id] = time.Now()
		mu.Unlock()
		fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
	}
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(seen) < to-from {
		calls := fake.Calls()
		now := time.Now()
		for _, c := range calls[before:] {
			id, ok := strings.CutPrefix(c, "restart ")
			if t, sel := emitted[id]; ok && sel {
				if _, done := seen[id]; !done {
					seen[id] = now.Sub(t)
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("flap: %d of %d restarted", len(seen), to-from)
		}
		time.Sleep(time.Millisecond)
	}
	var lat []time.Duration
	for _, d := range seen {
		lat = append(lat, d)
	}
	return lat, nil
}

// fillHistory writes containers × per restart decisions into a data dir,
// as a healer would have, through the bus's own writers: with states, each
// container's folded state as the healer stores it; without, as a version
// that stored none.
func fillHistory(dataDir string, containers, per int, withStates bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	hist, err := b.OpenHistory(ctx, "bench", bus.HistoryOptions{PerContainer: per, MaxAge: 720 * time.Hour}, log)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(b.JetStream(), 0, bus.DefaultLinger, log)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = pub.Run(pctx, time.Minute) })
	wg.Go(func() { _ = hist.Run(pctx) })
	t0 := time.Now().Add(-time.Hour)
	states := make([]heal.State, containers)
	for i := range per {
		for c := range containers {
			id := fmt.Sprintf("h%011d", c)
			e := hmd.New(hmd.RestartRequested, fmt.Sprintf("%s-%d", id, i), t0.Add(time.Duration(i)*time.Second), "svc-"+strconv.Itoa(c),
				hmd.Data{Host: "bench", ContainerID: id, Container: "svc-" + strconv.Itoa(c), Reason: "health_status: unhealthy", Attempt: i + 1, FrameRestarts: 1})
			pub.Publish(e)
			hist.Publish(e)
			if withStates {
				states[c] = heal.Fold(states[c], e)
				hist.Save(id, states[c])
			}
		}
	}
	for pub.Pending() > 0 || hist.Pending() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if !withStates {
		// The previous version had no state bucket.
		return b.JetStream().DeleteStream(ctx, "KV_"+bus.StateBucket)
	}
	return nil
}
