// Command notifier sends HealMyDocker's events to Slack and Mattermost as
// its own process, from the healer's NATS listener. It shares each target's
// durable consumer with any other notifier, so no event goes out twice.
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
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/logging"
	"github.com/healmydocker/healmydocker/internal/notify"
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
		fmt.Fprintf(stdout, "notifier %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	}
	var warnings []string
	cfg, err := config.LoadProgram("notifier", args, environ, stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "notifier: %v\n", err)
		return 2
	}
	for _, c := range []struct{ key, value, expected string }{
		{"nats_url", cfg.NATSURL, "the URL of the healer's NATS listener, such as nats://healer:4222"},
		{"notify_url", cfg.NotifyURL.Reveal(), "one or more incoming-webhook URLs"},
	} {
		if c.value == "" {
			fmt.Fprintf(stderr, "notifier: invalid %s (default): \"\": expected %s\n", c.key, c.expected)
			return 2
		}
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("component", "notifier")
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := runNotifier(ctx, cfg, log); err != nil {
		log.Error("notifier failed", "err", err)
		return 1
	}
	return 0
}

func runNotifier(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	nc, err := bus.Connect(cfg.NATSURL, cfg.NATSUser, cfg.NATSPassword.Reveal(), cfg.NATSToken.Reveal(), "notifier", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	pub := bus.NewPublisher(js, 0, bus.DefaultLinger, log)
	runners, err := notify.Runners(notify.Settings{
		URLs: cfg.NotifyURL.Reveal(), Level: cfg.NotifyLevel, GroupWait: cfg.NotifyGroupWait,
		Username: cfg.NotifyUsername, TemplateFile: cfg.NotifyTemplateFile,
	}, js, bus.EventsStream, host(cfg.HostName), pub, log)
	if err != nil {
		return err
	}
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pub.Run(pubCtx, 10*time.Second) })
	var g run.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
	for name, r := range runners {
		g.Add(func() error { return r.Run(gctx, name) }, func(error) { cancel() })
	}
	log.Info("notifier started", "nats", nc.ConnectedUrlRedacted(), "targets", len(runners))
	err = g.Run()
	stopPub()
	wg.Wait()
	return err
}

// host names the notifier in the events it publishes itself.
func host(configured string) string {
	if configured != "" {
		return configured
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "notifier"
}
