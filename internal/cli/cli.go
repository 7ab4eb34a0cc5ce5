// Package cli holds the healer's subcommands (check, events, pause,
// resume, test-notify, ui, healthcheck) and the split binaries (notifier,
// cleaner): their components on the healer's NATS, with a publisher that
// outlives their run group. The start-up itself is package program's.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/program"
)

// split describes one split binary.
type split struct {
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

// daemon is the split binary as a program: nats_url and the Required
// settings must be set, and its components run on the healer's bus.
func (p split) daemon() program.Daemon {
	return program.Daemon{
		Name: p.Name, Version: p.Version, Commit: p.Commit, Component: p.Name,
		Check: func(cfg config.Config) error {
			required := [][3]string{{"nats_url", cfg.NATSURL, "the URL of the healer's NATS listener, such as nats://healer:4222"}}
			if p.Required != nil {
				required = append(required, p.Required(cfg)...)
			}
			for _, r := range required {
				if r[1] == "" {
					return fmt.Errorf("invalid %s (default): \"\": expected %s", r[0], r[2])
				}
			}
			return nil
		},
		Start: p.start,
	}
}

// start connects to the healer and builds the components; the returned
// run runs them in one group, and stores what they published last.
func (p split) start(ctx context.Context, cfg config.Config, log *slog.Logger) (func(context.Context) error, error) {
	nc, js, err := connect(cfg, p.Name, log)
	if err != nil {
		return nil, err
	}
	b := Bus{Conn: nc, JetStream: js, Publisher: bus.NewPublisher(js, 0, bus.DefaultLinger, log)}
	actors, err := p.Run(ctx, cfg, b, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		defer nc.Close()
		pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
		defer stopPub()
		var wg sync.WaitGroup
		wg.Go(func() { _ = b.Publisher.Run(pubCtx, 10*time.Second) })
		var g program.Group
		gctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
		for _, a := range actors {
			g.Add(func() error { return a(gctx) }, func(error) { cancel() })
		}
		log.Info(p.Name+" started", "nats", nc.ConnectedUrlRedacted(), "components", len(actors))
		err := g.Run()
		stopPub()
		wg.Wait()
		if n := b.Publisher.Unstored(); n > 0 {
			log.Error("events not stored at shutdown", "count", n)
		}
		return err
	}, nil
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
