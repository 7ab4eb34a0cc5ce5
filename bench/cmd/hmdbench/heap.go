package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/healmydocker/healmydocker/internal/app"
	"github.com/healmydocker/healmydocker/internal/config"
)

// heapProfile runs the healer in this process against a fake engine with
// n watched containers, each started and healthy, and writes a heap
// profile (inuse) to out. The fake lives in this process too: its frames
// (test/fakedocker) are not the healer's.
func heapProfile(n int, settle time.Duration, out string) error {
	dir, err := os.MkdirTemp("", "hmdbench-heap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := &proc{}
	fake, err := startFake(dir, n, 0)
	if err != nil {
		return err
	}
	defer fake.Close()
	p.fake = fake
	environ := []string{"DOCKER_HOST=" + fake.Host(), "HMD_DATA_DIR=" + filepath.Join(dir, "data"), "HMD_HOST_NAME=bench"}
	cfg, err := config.Load(nil, environ, io.Discard, func(string) {})
	if err != nil {
		return err
	}
	// app.New reads DOCKER_HOST from the environment.
	if err := os.Setenv("DOCKER_HOST", fake.Host()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	a, err := app.New(ctx, cfg, log, "bench")
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for a.Ready() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready: %v", a.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	announce(fake, n)
	// As the footprint's RSS: after the events settled and the store's
	// caches expired.
	time.Sleep(settle)
	runtime.GC()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cancel()
	return <-done
}
