package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/testkit/natstest"
)

// fleetIngest measures how fast the hub's fleet stream takes in a restart
// storm on three hosts: three healer processes, each against its own fake
// Engine API (three real engines do not fit this machine), joined as leaf
// nodes to a nats-server hub run here.
func fleetIngest(healerBin string, perHost int) (string, error) {
	dir, err := os.MkdirTemp("", "hmdbench-fleet-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	hub, err := natstest.NewHub(natstest.HubOptions{StoreDir: filepath.Join(dir, "hub")})
	if err != nil {
		return "", err
	}
	defer hub.Stop()
	hosts := []string{"bench-a", "bench-b", "bench-c"}
	fakes := map[string]*fakedocker.Server{}
	for _, h := range hosts {
		hd := filepath.Join(dir, h)
		if err := os.MkdirAll(hd, 0o755); err != nil {
			return "", err
		}
		fake, err := fakedocker.Start(hd)
		if err != nil {
			return "", err
		}
		defer fake.Close()
		fakes[h] = fake
		for i := range perHost {
			fake.Add(fakedocker.Container{ID: fmt.Sprintf("c%011d", i), Name: fmt.Sprintf("svc-%d", i), Running: true, Health: "healthy", Labels: map[string]string{"healme": "true"}})
		}
		cmd := exec.Command(healerBin)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+fake.Host(), "HMD_DATA_DIR="+filepath.Join(hd, "data"), "HMD_HTTP_PORT=0", "HMD_LOG_LEVEL=warn",
			"HMD_HOST_NAME="+h, "HMD_HUB_URL="+hub.LeafURL())
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	}
	nc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Joined: the fleet stream sources all three.
	if _, joined := testkit.Poll(5*time.Minute, func() (struct{}, bool) {
		s, err := js.Stream(ctx, "HMD_FLEET")
		return struct{}{}, err == nil && len(s.CachedInfo().Config.Sources) == len(hosts)
	}); !joined {
		return "", fmt.Errorf("hosts did not join the fleet")
	}
	time.Sleep(time.Second)
	s, _ := js.Stream(ctx, "HMD_FLEET")
	before := s.CachedInfo().State.Msgs
	var mu sync.Mutex
	restarts := 0
	done := make(chan struct{})
	var last time.Time
	c, err := js.OrderedConsumer(ctx, "HMD_FLEET", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"hmd.*.*.outcome.restart_succeeded"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return "", err
	}
	cc, err := c.Consume(func(jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		restarts++
		last = time.Now()
		if restarts == perHost*len(hosts) {
			close(done)
		}
	})
	if err != nil {
		return "", err
	}
	defer cc.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			for i := range perHost {
				fakes[h].Emit(fmt.Sprintf("c%011d", i), events.ActionHealthStatusUnhealthy, nil)
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("the hub got %d of %d restarts", restarts, perHost*len(hosts))
	}
	mu.Lock()
	took := last.Sub(start)
	mu.Unlock()
	s, _ = js.Stream(ctx, "HMD_FLEET")
	ingested := s.CachedInfo().State.Msgs - before
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Fleet: hub ingest\n\nThree healer processes, each against its own fake Engine API (three real engines do not fit this machine), joined as leaf nodes to a nats-server hub in this process; each host's fake turns %d containers unhealthy at once. ", perHost)
	fmt.Fprintf(&b, "Measured from the first unhealthy event to the last `restart_succeeded` arriving in the hub's `HMD_FLEET` (sourced from the three hosts' streams).\n\n")
	fmt.Fprintf(&b, "| hosts | restarts | events ingested by the hub | time | ingest rate |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %s | %.0f events/s |\n", len(hosts), perHost*len(hosts), ingested, took.Round(time.Millisecond), float64(ingested)/took.Seconds())
	return b.String(), nil
}
