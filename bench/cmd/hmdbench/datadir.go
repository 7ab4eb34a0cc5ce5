package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/healmydocker/healmydocker/internal/bus"
)

// dataDirGrowth runs the healer against the fake engine with one container
// flapping once a second for flaps simulated seconds (a day: 86,400), fast
// forward, and reports the data dir's size against the stores' bounds.
func dataDirGrowth(healerBin string, flaps int) (string, error) {
	dir, err := os.MkdirTemp("", "hmdbench-datadir-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	dataDir := filepath.Join(dir, "data")
	p, _, err := startOnFake(healerBin, dir, dataDir, 1, 0)
	if err != nil {
		return "", err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	if _, err := p.ready(30 * time.Second); err != nil {
		return "", err
	}
	id := fmt.Sprintf("c%011d", 0)
	began := time.Now()
	t0 := began.Add(-time.Duration(flaps) * time.Second)
	for i := range flaps {
		at := t0.Add(time.Duration(i) * time.Second)
		p.fake.EmitAt(id, events.ActionDie, map[string]string{"exitCode": "1"}, at)
		p.fake.EmitAt(id, events.ActionStart, nil, at.Add(time.Millisecond))
		p.fake.EmitAt(id, events.ActionHealthStatusUnhealthy, nil, at.Add(300*time.Millisecond))
		p.fake.EmitAt(id, events.ActionHealthStatusHealthy, nil, at.Add(600*time.Millisecond))
		// Fast forward, but not past the healer's in-memory queue: a real
		// day comes at a day's pace, and overflow is a different test.
		for i%500 == 0 {
			pending, _, err := p.metrics("hmd_events_pending", "hmd_bus_stream_messages")
			if err != nil {
				return "", err
			}
			if pending < 20_000 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	emitted := time.Since(began)
	// Settled: nothing pending and the stream unchanged for 3 s.
	last, since := -1.0, time.Now()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		pending, msgs, err := p.metrics("hmd_events_pending", "hmd_bus_stream_messages")
		if err != nil {
			return "", err
		}
		if msgs != last {
			last, since = msgs, time.Now()
		}
		if pending == 0 && time.Since(since) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the healer did not settle: %v pending", pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dropped, _, err := p.metrics(`hmd_events_dropped_total{store="events"}`, `hmd_events_dropped_total{store="history"}`)
	if err != nil {
		return "", err
	}
	took := time.Since(began)
	p.stop()
	stopped = true

	disk, apparent, err := usage(dataDir)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{DataDir: dataDir, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	defer b.Close()
	var rows strings.Builder
	var bounds int64
	for _, s := range []string{bus.EventsStream, bus.HistoryStream, "KV_" + bus.RoutesBucket} {
		st, err := b.JetStream().Stream(ctx, s)
		if err != nil {
			fmt.Fprintf(&rows, "| %s | (none) | | | |\n", s)
			continue
		}
		info := st.CachedInfo()
		bounds += info.Config.MaxBytes
		removed := info.State.LastSeq - info.State.Msgs
		fmt.Fprintf(&rows, "| %s | %s | %d | %d | %s |\n", s, mb(info.State.Bytes), info.State.Msgs, removed, mb(uint64(info.Config.MaxBytes)))
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n## Data dir growth (fake engine)\n\nOne container flapping once a second for a simulated day: %d flaps of die, start, unhealthy and healthy, sent through the fake Engine API with the daemon's timestamps a second apart (%s to send, %s until the healer had stored everything), and the healer's own decisions about them, with the default bounds (the history also keeps 50 entries per container).\n\n", flaps, emitted.Round(time.Second), took.Round(time.Second))
	fmt.Fprintf(&out, "| stream | bytes | messages | oldest removed by a limit | bound |\n|---|---|---|---|---|\n%s\n", rows.String())
	fmt.Fprintf(&out, "- Data dir on disk: **%s** (%s apparent), against **%s** of stream bounds; each stream may pass its bound by the file-store block being written (at most 8 MiB).\n", mb(uint64(disk)), mb(uint64(apparent)), mb(uint64(bounds)))
	fmt.Fprintf(&out, "- Events the healer could not store: %v.\n", dropped)
	return out.String(), nil
}

func mb(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// usage is the space dir takes on disk (allocated blocks) and the sum of
// its files' sizes.
func usage(dir string) (disk, apparent int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			disk += st.Blocks * 512
		}
		if !d.IsDir() {
			apparent += info.Size()
		}
		return nil
	})
	return disk, apparent, err
}

// metrics reads two samples from the healer's /metrics.
func (p *proc) metrics(a, b string) (float64, float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var va, vb float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), a+" "); ok {
			va, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(sc.Text(), b+" "); ok {
			vb, _ = strconv.ParseFloat(v, 64)
		}
	}
	return va, vb, sc.Err()
}
