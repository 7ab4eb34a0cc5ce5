package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/test/fakedocker"
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
	cport, lport := freePort(), freePort()
	hub, err := server.NewServer(&server.Options{ServerName: "hub", Host: "127.0.0.1", Port: cport, NoSigs: true,
		JetStream: true, JetStreamDomain: "hub", StoreDir: filepath.Join(dir, "hub"),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: lport, NoAdvertise: true}})
	if err != nil {
		return "", err
	}
	hub.Start()
	defer hub.Shutdown()
	if !hub.ReadyForConnections(10 * time.Second) {
		return "", fmt.Errorf("hub not ready")
	}
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
			"HMD_HOST_NAME="+h, fmt.Sprintf("HMD_HUB_URL=nats://127.0.0.1:%d", lport))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return "", err
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", cport))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Joined: the fleet stream sources all three.
	for {
		if s, err := js.Stream(ctx, "HMD_FLEET"); err == nil && len(s.CachedInfo().Config.Sources) == len(hosts) {
			break
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("hosts did not join the fleet")
		}
		time.Sleep(100 * time.Millisecond)
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

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
