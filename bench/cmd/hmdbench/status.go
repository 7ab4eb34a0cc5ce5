package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/healmydocker/healmydocker/test/fakedocker"
)

// statusLoad reports the status JSON under load: 1,000 watched
// containers, 200 requests/s for 10 s, open loop (a request goes out every
// 5 ms whether or not the last one is back).
func statusLoad(healerBin string) (string, error) {
	const n, rate, dur = 1000, 200, 10 * time.Second
	dir, err := os.MkdirTemp("", "hmdbench-status-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, _, err := startOnFake(healerBin, dir, filepath.Join(dir, "data"), n, 0)
	if err != nil {
		return "", err
	}
	defer p.stop()
	if _, err := p.ready(time.Minute); err != nil {
		return "", err
	}
	announce(p.fake, n)
	url := fmt.Sprintf("http://127.0.0.1:%d/", p.port)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func() (time.Duration, int, error) {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			return 0, 0, err
		}
		size, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t0), int(size), nil
	}
	// Wait until the view holds every container, then let it settle.
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.Get(url)
		var body string
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Count(body, `"health": "healthy"`) >= n {
				break
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("status never listed %d healthy containers (%d; %v): %.300s", n, strings.Count(body, `"health": "healthy"`), err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := settle(p, 30*time.Second); err != nil {
		return "", err
	}
	for range 20 { // warm the connection pool
		if _, _, err := get(); err != nil {
			return "", err
		}
	}
	rss0, calls0 := p.rss(), p.fake.RequestsButPing()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		fails int
		size  int
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i := range int(dur.Seconds() * rate) {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
		wg.Go(func() {
			d, sz, err := get()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			lat, size = append(lat, d), sz
		})
	}
	wg.Wait()
	calls := p.fake.RequestsButPing() - calls0
	rss1 := p.rss()
	slices.Sort(lat)
	var b strings.Builder
	b.WriteString("\n## Status under load (fake engine)\n\n")
	fmt.Fprintf(&b, "`GET /` (the status JSON, %d KB) with %d watched containers, %d requests/s for %s, open loop, from this process over loopback. Docker calls counted on the fake Engine API (all requests but the periodic ping).\n\n", size/1000, n, rate, dur)
	b.WriteString("| requests | failed | p50 | p99 | max | Docker calls during the load | RSS before | RSS after |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %d | %.1f MB | %.1f MB |\n", len(lat)+fails, fails, ms(percentile(lat, .5)), ms(percentile(lat, .99)), ms(percentile(lat, 1)), calls, float64(rss0)/1e6, float64(rss1)/1e6)
	fmt.Fprintf(&b, "\nTargets: p99 ≤ 10 ms, zero Docker calls per request, RSS flat.\n")
	return b.String(), nil
}

// settle waits until the process has used under 2% of a CPU over a
// second (its queues drained, the store quiet), at most max.
func settle(p *proc, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		c0 := p.cpu()
		time.Sleep(time.Second)
		if p.cpu()-c0 <= 20*time.Millisecond {
			return nil
		}
		if time.Now().After(deadline) {
			return nil // measured busy: the figures say so themselves
		}
	}
}

// series reports the series of hmd_restarts_total while 10,000 containers
// come and go: each is created, turns unhealthy, is restarted and removed,
// 1,000 at a time.
func series(healerBin string) (string, error) {
	const total, batch = 10000, 1000
	dir, err := os.MkdirTemp("", "hmdbench-series-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, _, err := startOnFake(healerBin, dir, filepath.Join(dir, "data"), 0, 0)
	if err != nil {
		return "", err
	}
	defer p.stop()
	if _, err := p.ready(time.Minute); err != nil {
		return "", err
	}
	most := 0
	for from := 0; from < total; from += batch {
		for i := from; i < from+batch; i++ {
			id := fmt.Sprintf("s%011d", i)
			p.fake.Add(fakedocker.Container{ID: id, Name: fmt.Sprintf("churn-%d", i), Running: true, Health: "healthy", Labels: map[string]string{"healme": "true"}})
			p.fake.Emit(id, events.ActionStart, nil)
			p.fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
		}
		if _, err := waitCalls(p.fake, from+batch, 2*time.Minute); err != nil {
			return "", fmt.Errorf("restarts: %w", err)
		}
		s, err := p.restartSeries(time.Minute, func(s int) bool { return s >= batch })
		if err != nil {
			return "", err
		}
		most = max(most, s)
		for i := from; i < from+batch; i++ {
			p.fake.Remove(fmt.Sprintf("s%011d", i))
		}
	}
	left, err := p.restartSeries(time.Minute, func(s int) bool { return s == 0 })
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("\n## Metric series (fake engine)\n\n")
	fmt.Fprintf(&b, "%d containers come and go, %d at a time: each is created, turns unhealthy, is restarted and removed. Series of `hmd_restarts_total` scraped from `/metrics`.\n\n", total, batch)
	b.WriteString("| most at once | after all are gone |\n|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d |\n", most, left)
	b.WriteString("\nTarget: bounded (a destroyed container's series are removed).\n")
	return b.String(), nil
}

// restartSeries scrapes /metrics until ok holds for the count of
// hmd_restarts_total series, or d passes; it returns the last count.
func (p *proc) restartSeries(d time.Duration, ok func(int) bool) (int, error) {
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port))
		if err != nil {
			return 0, err
		}
		n := 0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "hmd_restarts_total{") {
				n++
			}
		}
		resp.Body.Close()
		if ok(n) || time.Now().After(deadline) {
			return n, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}
