// Command cleaner removes the duplicate containers docker-compose leaves
// behind, as its own process: it talks to the Docker socket (or a socket
// proxy) and to the healer's NATS listener, whose container events trigger
// its sweeps and whose stream records what it did.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/cleaner"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func realMain(args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintf(stdout, "cleaner %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	}
	var warnings []string
	cfg, err := config.LoadProgram("cleaner", args, environ, stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cleaner: %v\n", err)
		return 2
	}
	if cfg.NATSURL == "" {
		fmt.Fprintln(stderr, `cleaner: invalid nats_url (default): "": expected the URL of the healer's NATS listener, such as nats://healer:4222`)
		return 2
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("component", "cleaner")
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := runCleaner(ctx, cfg, log); err != nil {
		log.Error("cleaner failed", "err", err)
		return 1
	}
	return 0
}

func runCleaner(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	dc, err := docker.NewFromEnv()
	if err != nil {
		return err
	}
	defer dc.Close()
	host := cfg.HostName
	if host == "" {
		info, err := dc.Connect(ctx)
		if err != nil {
			return fmt.Errorf("host name: %w (or set HMD_HOST_NAME)", err)
		}
		host = info.Name
	}
	nc, err := bus.Connect(cfg.NATSURL, cfg.NATSUser, cfg.NATSPassword.Reveal(), cfg.NATSToken.Reveal(), "cleaner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	pub := bus.NewPublisher(js, 0, bus.DefaultLinger, log)
	triggers, unsubscribe, err := bus.Trigger(nc, host, cleaner.TriggerKinds, log)
	if err != nil {
		return err
	}
	defer unsubscribe()
	cl := cleaner.New(cleaner.Options{
		Host: host, Label: cfg.ContainerLabel, Namespace: cfg.Namespace, Policy: cfg.Policy,
		DryRun: cfg.CleanDryRun, Grace: cfg.CleanGrace, Interval: cfg.CleanInterval,
		Docker: dc, Publisher: pub, Triggers: triggers, Log: log,
	})
	log.Info("cleaner started", "host", host, "nats", nc.ConnectedUrlRedacted(), "dry_run", cfg.CleanDryRun, "default", cfg.Policy.CleanDuplicates)

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pub.Run(pubCtx, 10*time.Second) })
	var g run.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return cl.Run(gctx) }, func(error) { cancel() })
	err = g.Run()
	stopPub()
	wg.Wait()
	return err
}
