// Command hmdbench measures heal latency on the real Docker Engine: from the
// daemon's health_status: unhealthy event to its kill event for the same
// container, both on the daemon's clock. Rounds of the healer alternate with
// rounds of the floor program, and the medians are written to BENCHMARKS.md.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

func main() {
	healer := flag.String("healer", "bin/healer", "healer binary")
	floor := flag.String("floor", "bin/floor", "floor binary")
	out := flag.String("out", "BENCHMARKS.md", "report file")
	rounds := flag.Int("rounds", 5, "rounds of each program per size")
	sizes := flag.String("sizes", "10,40", "containers turning unhealthy together, per round")
	interval := flag.Duration("health-interval", 100*time.Millisecond, "fixture health-check interval")
	logLevel := flag.String("healer-log-level", "warn", "the healer's log level")
	image := flag.String("image", "healmydocker:local", "the project's image, whose size is reported (empty: none)")
	fleet := flag.Int("fleet-storm", 500, "containers per host in the fleet ingest storm (0: skip)")
	healOnly := flag.Bool("heal-only", false, "only the heal path: heal latency against the floor, the restart storm and the decision time")
	only := flag.String("only", "", "run only this part: footprint, startup, scale, status, series, fleet or datadir")
	flaps := flag.Int("flaps", 86400, "simulated seconds of one container flapping, for the data dir growth")
	idle := flag.Duration("idle", 30*time.Second, "idle window for CPU time")
	fpSizes := flag.String("footprint-sizes", "0,100,1000,10000", "watched containers per footprint row (the first is the baseline)")
	heapOut := flag.String("heapprofile", "", "write a heap profile of an in-process healer at 10,000 watched containers to this file, and exit")
	flag.Parse()
	if *heapOut != "" {
		if err := heapProfile(10000, 3*time.Second+*idle, *heapOut); err != nil {
			fmt.Fprintln(os.Stderr, "hmdbench:", err)
			os.Exit(1)
		}
		return
	}
	parts := map[string]func() (string, error){
		"footprint": func() (string, error) { return footprint(*healer, *idle, ints(*fpSizes)) },
		"startup":   func() (string, error) { return startup(*healer) },
		"scale":     func() (string, error) { return scale(*healer) },
		"status":    func() (string, error) { return statusLoad(*healer) },
		"series":    func() (string, error) { return series(*healer) },
		"fleet":     func() (string, error) { return fleetIngest(*healer, *fleet) },
		"datadir":   func() (string, error) { return dataDirGrowth(*healer, *flaps) },
	}
	if *only != "" {
		part, ok := parts[*only]
		if !ok {
			fmt.Fprintf(os.Stderr, "hmdbench: -only %q: want footprint, startup, scale, status, series, fleet or datadir\n", *only)
			os.Exit(2)
		}
		sec, err := part()
		if err != nil {
			fmt.Fprintln(os.Stderr, "hmdbench:", err)
			os.Exit(1)
		}
		fmt.Printf("%s\nProduced by `%s` on %s.\n", sec, strings.Join(os.Args, " "), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
		return
	}
	if err := run(*healer, *floor, *out, *rounds, *sizes, *interval, *logLevel, *image, *fleet, *idle, *healOnly); err != nil {
		fmt.Fprintln(os.Stderr, "hmdbench:", err)
		os.Exit(1)
	}
}

type result struct {
	p50, p90, max time.Duration
	// extra counts restarts beyond one per container in the round.
	extra int
	// storm is from the first unhealthy event to the last container
	// healthy again.
	storm time.Duration
}

func run(healerBin, floorBin, out string, rounds int, sizesFlag string, interval time.Duration, logLevel, image string, fleetSize int, idle time.Duration, healOnly bool) error {
	env, err := dockertest.Setup()
	if err != nil {
		return err
	}
	defer env.Close()
	var sizes []int
	for _, s := range strings.Split(sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("size %q: %w", s, err)
		}
		sizes = append(sizes, n)
	}
	b := &bench{env: env, healerBin: healerBin, floorBin: floorBin, interval: interval, logLevel: logLevel}
	var report strings.Builder
	cmdline := "make bench  # " + strings.Join(os.Args, " ")
	fmt.Fprintf(&report, "# Benchmarks\n\nProduced by `%s` on %s (%s).\n\n", cmdline, time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine())
	fmt.Fprintf(&report, "## Heal latency\n\nFrom the daemon's `health_status: unhealthy` event to its `kill` event for the same container, both on the daemon's clock. ")
	fmt.Fprintf(&report, "Each round starts N fresh fixture containers (health check every %s, 1 retry) that turn unhealthy at the same instant. ", interval)
	fmt.Fprintf(&report, "Rounds of the healer and of the floor program (a goroutine calling ContainerRestart per unhealthy event, no policy, no bus) alternate; each figure is the median over %d rounds of that round's percentile.\n\n", rounds)
	fmt.Fprintf(&report, "| N | program | p50 | p90 | max | healed |\n|---|---|---|---|---|---|\n")
	var verdicts []string
	healerStorm := map[int]time.Duration{}
	for _, n := range sizes {
		res := map[string][]result{}
		healed := map[string]string{}
		extra := map[string]int{}
		for r := range rounds {
			for _, prog := range []string{"healer", "floor"} {
				rr, err := b.round(prog, n, r)
				if err != nil {
					return fmt.Errorf("%s round %d with %d containers: %w", prog, r, n, err)
				}
				fmt.Fprintf(os.Stderr, "n=%d round=%d %s: p50 %s p90 %s max %s extra restarts %d\n", n, r, prog, ms(rr.p50), ms(rr.p90), ms(rr.max), rr.extra)
				res[prog] = append(res[prog], rr)
				extra[prog] += rr.extra
			}
		}
		for prog, x := range extra {
			// A round that leaves a container unhealed fails the whole run.
			healed[prog] = fmt.Sprintf("%d/%d in each of %d rounds, %d extra restarts", n, n, rounds, x)
		}
		healerStorm[n] = median(res["healer"], func(r result) time.Duration { return r.storm })
		med := map[string]result{}
		for prog, rs := range res {
			med[prog] = result{
				p50: median(rs, func(r result) time.Duration { return r.p50 }),
				p90: median(rs, func(r result) time.Duration { return r.p90 }),
				max: median(rs, func(r result) time.Duration { return r.max }),
			}
			fmt.Fprintf(&report, "| %d | %s | %s | %s | %s | %s |\n", n, prog, ms(med[prog].p50), ms(med[prog].p90), ms(med[prog].max), healed[prog])
		}
		r50 := float64(med["healer"].p50) / float64(med["floor"].p50)
		r90 := float64(med["healer"].p90) / float64(med["floor"].p90)
		ok := "meets"
		if r50 > 1.2 || r90 > 1.2 {
			ok = "misses"
		}
		verdicts = append(verdicts, fmt.Sprintf("- N=%d: healer/floor = %.2f at p50, %.2f at p90: %s the target of 1.2.", n, r50, r90, ok))
	}
	fmt.Fprintf(&report, "\n%s\n", strings.Join(verdicts, "\n"))
	if hs, ok := healerStorm[40]; ok {
		var cli []result
		for r := range rounds {
			rr, err := b.round("cli", 40, r)
			if err != nil {
				return fmt.Errorf("cli round %d: %w", r, err)
			}
			fmt.Fprintf(os.Stderr, "n=40 round=%d cli: storm %s\n", r, ms(rr.storm))
			cli = append(cli, rr)
		}
		cs := median(cli, func(r result) time.Duration { return r.storm })
		fmt.Fprintf(&report, "\n## Restart storm\n\n40 containers turn unhealthy at the same instant; from the first `health_status: unhealthy` to the last container `healthy` again after its restart, on the daemon's clock, median of %d rounds. ", rounds)
		fmt.Fprintf(&report, "The reference runs `docker restart` for all 40 at once from the CLI (40 processes) as soon as the first turns unhealthy. The healer runs with its default concurrency bound (64).\n\n")
		fmt.Fprintf(&report, "| program | storm healed in |\n|---|---|\n| healer | %s |\n| 40 × `docker restart` in parallel | %s |\n\nhealer/CLI = %.2f.\n", ms(hs), ms(cs), float64(hs)/float64(cs))
	}
	fmt.Fprintf(&report, "\n## The healer's own time\n\nFrom reading the Docker event to sending the restart request (`hmd_heal_decision_seconds`, all healer rounds together): %.0f restarts, p99 %s. Target: p99 ≤ 1 ms. Publishing to JetStream is not on this path: the healer only appends to an in-memory queue.\n\nCumulative counts: %s.\n", b.decisions.count, b.decisions.p99(), b.decisions)
	if healOnly {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			return err
		}
		fmt.Print(report.String())
		return nil
	}
	report.WriteString(sizesSection(healerBin, image))
	for _, part := range []struct {
		name string
		f    func() (string, error)
	}{
		{"footprint", func() (string, error) { return footprint(healerBin, idle, []int{0, 100, 1000, 10000}) }},
		{"startup", func() (string, error) { return startup(healerBin) }},
		{"scale", func() (string, error) { return scale(healerBin) }},
		{"status load", func() (string, error) { return statusLoad(healerBin) }},
		{"series", func() (string, error) { return series(healerBin) }},
	} {
		sec, err := part.f()
		if err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
		report.WriteString(sec)
	}
	if fleetSize > 0 {
		sec, err := fleetIngest(healerBin, fleetSize)
		if err != nil {
			return fmt.Errorf("fleet ingest: %w", err)
		}
		report.WriteString(sec)
	}
	if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(report.String())
	return nil
}

func machine() string {
	cpus := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strconv.Itoa(strings.Count(string(b), "processor\t:"))
	}
	v, _ := dockertest.Docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
	return cpus + " CPUs, Docker " + v
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func median(rs []result, f func(result) time.Duration) time.Duration {
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func percentile(v []time.Duration, p float64) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

type bench struct {
	env                 *dockertest.Env
	healerBin, floorBin string
	interval            time.Duration
	logLevel            string
	decisions           histogram
}

// round runs one program against n containers and returns their latencies.
func (b *bench) round(prog string, n, r int) (result, error) {
	label := fmt.Sprintf("hmdbench-%s-%d-%d", prog, n, r)
	stream, stopEvents, err := b.env.Stream()
	if err != nil {
		return result{}, err
	}
	defer stopEvents()
	stopProg, err := b.start(prog, label)
	if err != nil {
		return result{}, err
	}

	at := time.Now().Add(time.Second + time.Duration(n)*150*time.Millisecond)
	names := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := range n {
		names[i] = fmt.Sprintf("%s-c%d", label, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := b.env.Start(dockertest.Spec{
				Name:   names[i],
				Labels: map[string]string{label: "true"},
				Env:    map[string]string{"FIXTURE_UNHEALTHY_AT": strconv.FormatInt(at.UnixMilli(), 10), "FIXTURE_SICK_RUNS": "1"},
				Args:   []string{"--health-interval", b.interval.String(), "--health-retries", "1"},
			})
			errs <- err
		})
	}
	wg.Wait()
	// The program stops before its containers go, so it never races a removal.
	defer func() {
		stopProg()
		_, _ = dockertest.Docker(append([]string{"rm", "-f", "-v"}, names...)...)
	}()
	close(errs)
	for err := range errs {
		if err != nil {
			return result{}, err
		}
	}
	if prog == "cli" {
		// The reference: `docker restart` of every container at once from
		// the CLI, as soon as the first turns unhealthy.
		go func() {
			if _, ok := stream.WaitFor(time.Until(at)+60*time.Second, func(e dockertest.Event) bool {
				return strings.HasPrefix(e.Name(), label+"-") && e.Action == "health_status: unhealthy"
			}); !ok {
				return
			}
			var cwg sync.WaitGroup
			for _, name := range names {
				cwg.Go(func() { _ = exec.Command("docker", "restart", name).Run() })
			}
			cwg.Wait()
		}()
	}
	var lat []time.Duration
	var first, last int64
	for _, name := range names {
		wait := time.Until(at) + 60*time.Second
		if prog == "cli" {
			// Restarted at the first one's turn, it may never turn unhealthy.
			wait = time.Until(at) + 5*time.Second
		}
		u, sick := stream.WaitFor(wait, dockertest.Is(name, "health_status: unhealthy"))
		if !sick && prog != "cli" {
			return result{}, fmt.Errorf("%s never turned unhealthy", name)
		}
		k, ok := stream.WaitFor(30*time.Second, func(e dockertest.Event) bool {
			// The CLI restarts them all at the first one's turn, some
			// before their own: any kill of a fresh container is its restart.
			return dockertest.Is(name, "kill")(e) && (prog == "cli" || e.TimeNano >= u.TimeNano)
		})
		if !ok {
			return result{}, fmt.Errorf("%s was not restarted within 30s of turning unhealthy", name)
		}
		if _, ok := stream.WaitFor(30*time.Second, func(e dockertest.Event) bool {
			return dockertest.Is(name, "start")(e) && e.TimeNano > k.TimeNano
		}); !ok {
			return result{}, fmt.Errorf("%s was not started again within 30s", name)
		}
		h, ok := stream.WaitFor(30*time.Second, func(e dockertest.Event) bool {
			return dockertest.Is(name, "health_status: healthy")(e) && e.TimeNano > k.TimeNano
		})
		if !ok {
			return result{}, fmt.Errorf("%s was not healthy again within 30s of its restart", name)
		}
		if sick {
			lat = append(lat, time.Duration(k.TimeNano-u.TimeNano))
			if first == 0 || u.TimeNano < first {
				first = u.TimeNano
			}
		}
		last = max(last, h.TimeNano)
	}
	if prog == "healer" {
		if err := b.scrape(); err != nil {
			return result{}, err
		}
	}
	extra := 0
	for _, name := range names {
		extra += max(len(stream.All(dockertest.Is(name, "kill")))-1, 0)
	}
	return result{p50: percentile(lat, 0.5), p90: percentile(lat, 0.9), max: percentile(lat, 1), extra: extra, storm: time.Duration(last - first)}, nil
}

var metricsURL string

// start runs the program and returns once it watches events.
func (b *bench) start(prog, label string) (func(), error) {
	var cmd *exec.Cmd
	switch prog {
	case "cli":
		return func() {}, nil
	case "floor":
		cmd = exec.Command(b.floorBin, "-label", label+"=true")
	default:
		port, err := testkit.PickPort()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "hmdbench-")
		if err != nil {
			return nil, err
		}
		metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		cmd = exec.Command(b.healerBin, "--data-dir", filepath.Join(dir, "data"), "--container-label", label,
			"--http-port", strconv.Itoa(port), "--log-level", b.logLevel)
		defer func() { go func() { _ = cmd.Wait(); os.RemoveAll(dir) }() }()
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt) }
	if prog == "floor" {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.Contains(line, "watching") {
			stop()
			return nil, fmt.Errorf("floor did not start: %q %v", line, err)
		}
		return func() { stop(); _ = cmd.Wait() }, nil
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	ready := strings.TrimSuffix(metricsURL, "metrics") + "readyz"
	if _, ok := testkit.Poll(30*time.Second, func() (struct{}, bool) {
		resp, err := http.Get(ready)
		if err != nil {
			return struct{}{}, false
		}
		resp.Body.Close()
		return struct{}{}, resp.StatusCode == 200
	}); !ok {
		stop()
		return nil, fmt.Errorf("healer not ready within 30s")
	}
	return stop, nil
}

// sizesSection reports the binaries next to healerBin and the image.
func sizesSection(healerBin, image string) string {
	var b strings.Builder
	b.WriteString("\n## Binary and image size\n\n| artifact | size |\n|---|---|\n")
	dir := filepath.Dir(healerBin)
	for _, name := range []string{"healer", "notifier", "cleaner"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			fmt.Fprintf(&b, "| `bin/%s` (static, stripped) | %.1f MB |\n", name, float64(fi.Size())/1e6)
		}
	}
	if image != "" {
		out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", image).Output()
		if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil {
			fmt.Fprintf(&b, "| image `%s`, uncompressed (one binary; notifier and cleaner are links to it) | %.1f MB (%d bytes); target ≤ 30 MB |\n", image, float64(n)/1e6, n)
		} else {
			fmt.Fprintf(&b, "| image `%s` | not built (run `make image`) |\n", image)
		}
	}
	return b.String()
}

// ints parses a comma-separated list of integers; bad items are skipped.
func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}
