// Package cli is the shared frame of the split binaries (cleaner,
// notifier): version, configuration with exit code 2, logging, the NATS
// connection to the healer, and one run group with a publisher that
// outlives it.
package cli

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// Program describes one split binary.
type Program struct {
	Name, Version, Commit string
	// Required lists settings that must not be empty: key, value, expected.
	Required func(config.Config) [][3]string
	// Run builds the components on the healer's bus and returns them.
	Run func(ctx context.Context, cfg config.Config, b Bus, log *slog.Logger) ([]func(context.Context) error, error)
}

// Bus is a split binary's connection to the healer.
type Bus struct {
	Conn      *nats.Conn
	JetStream jetstream.JetStream
	// Publisher stores the binary's own events; it outlives the components.
	Publisher *bus.Publisher
}

// Main runs p and returns the exit code: 0, 1 for a failure, 2 for bad
// configuration.
func Main(p Program, args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintf(stdout, "%s %s (commit %s, %s)\n", p.Name, p.Version, p.Commit, runtime.Version())
		return 0
	}
	var warnings []string
	cfg, err := config.LoadProgram(p.Name, args, environ, stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return 2
	}
	required := [][3]string{{"nats_url", cfg.NATSURL, "the URL of the healer's NATS listener, such as nats://healer:4222"}}
	if p.Required != nil {
		required = append(required, p.Required(cfg)...)
	}
	for _, r := range required {
		if r[1] == "" {
			fmt.Fprintf(stderr, "%s: invalid %s (default): \"\": expected %s\n", p.Name, r[0], r[2])
			return 2
		}
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("component", p.Name)
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := serve(ctx, p, cfg, log); err != nil {
		log.Error(p.Name+" failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, p Program, cfg config.Config, log *slog.Logger) error {
	nc, js, err := connect(cfg, p.Name, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	b := Bus{Conn: nc, JetStream: js, Publisher: bus.NewPublisher(js, 0, bus.DefaultLinger, log)}
	actors, err := p.Run(ctx, cfg, b, log)
	if err != nil {
		return err
	}
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Publisher.Run(pubCtx, 10*time.Second) })
	var g run.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
	for _, a := range actors {
		g.Add(func() error { return a(gctx) }, func(error) { cancel() })
	}
	log.Info(p.Name+" started", "nats", nc.ConnectedUrlRedacted(), "components", len(actors))
	err = g.Run()
	stopPub()
	wg.Wait()
	if n := b.Publisher.Unstored(); n > 0 {
		log.Error("events not stored at shutdown", "count", n)
	}
	return err
}

// connect reaches the healer's (or the hub's) NATS with the configured
// credentials, as name.
func connect(cfg config.Config, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := bus.Connect(cfg.NATSURL, cfg.NATSUser, cfg.NATSPassword.Reveal(), cfg.NATSToken.Reveal(), name,
		bus.TLS{Cert: cfg.NATSTLSCert, Key: cfg.NATSTLSKey, CA: cfg.NATSTLSCA}, log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
