// Command notifier sends HealMyDocker's events to Slack, Mattermost and the
// Shoutrrr services as its own process, from the healer's NATS listener. It
// shares each target's durable consumer with any other notifier, so no
// event goes out twice.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/notify"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(cli.Main(cli.Program{
		Name: "notifier", Version: version, Commit: commit,
		Required: func(c config.Config) [][3]string {
			return [][3]string{{"notify_url", c.NotifyURL.Reveal(), "one or more notification URLs"}}
		},
		Run: start,
	}, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func start(_ context.Context, cfg config.Config, b cli.Bus, log *slog.Logger) ([]func(context.Context) error, error) {
	runners, err := notify.Runners(notify.Settings{
		URLs: cfg.NotifyURL.Reveal(), Level: cfg.NotifyLevel, GroupWait: cfg.NotifyGroupWait,
		Username: cfg.NotifyUsername, TemplateFile: cfg.NotifyTemplateFile,
	}, b.JetStream, bus.EventsStream, host(cfg.HostName), b.Publisher, log)
	if err != nil {
		return nil, err
	}
	var actors []func(context.Context) error
	for name, r := range runners {
		actors = append(actors, func(ctx context.Context) error { return r.Run(ctx, name) })
	}
	return actors, nil
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
