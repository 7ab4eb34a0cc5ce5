// Command cleaner removes the duplicate containers docker-compose leaves
// behind, as its own process: it talks to the Docker socket (or a socket
// proxy) and to the healer's NATS listener, whose container events trigger
// its sweeps and whose stream records what it did.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/cleaner"
	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(cli.Main(cli.Program{Name: "cleaner", Version: version, Commit: commit, Run: start},
		os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func start(ctx context.Context, cfg config.Config, b cli.Bus, log *slog.Logger) ([]func(context.Context) error, error) {
	dc, err := docker.NewFromEnv()
	if err != nil {
		return nil, err
	}
	host := cfg.HostName
	if host == "" {
		info, err := dc.Connect(ctx)
		if err != nil {
			_ = dc.Close()
			return nil, fmt.Errorf("host name: %w (or set HMD_HOST_NAME)", err)
		}
		host = info.Name
	}
	triggers, unsubscribe, err := bus.Trigger(b.Conn, host, cleaner.TriggerKinds, log)
	if err != nil {
		_ = dc.Close()
		return nil, err
	}
	cl := cleaner.New(cleaner.Options{
		Host: host, Label: cfg.ContainerLabel, Namespace: cfg.Namespace, Policy: cfg.Policy,
		DryRun: cfg.CleanDryRun, Grace: cfg.CleanGrace, Interval: cfg.CleanInterval,
		Docker: dc, Publisher: b.Publisher, Triggers: triggers, Log: log,
	})
	log.Info("cleaning", "host", host, "dry_run", cfg.CleanDryRun, "default", cfg.Policy.CleanDuplicates)
	return []func(context.Context) error{func(ctx context.Context) error {
		defer dc.Close()
		defer unsubscribe()
		return cl.Run(ctx)
	}}, nil
}
