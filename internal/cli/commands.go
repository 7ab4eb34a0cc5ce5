package cli

import (
	"context"
	"errors"

	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/httpapi"
	"github.com/healmydocker/healmydocker/internal/program"
)

// Commands are the healer's subcommands, by name.
func Commands(version string) map[string]program.Runner {
	return map[string]program.Runner{
		"healthcheck": program.Command[struct{}]{
			Name: "healer healthcheck",
			Run:  healthcheck,
		}.Main,
		"events": program.Command[EventsOptions]{
			Name:  "healer events",
			Usage: "healer events [--follow] [--since 1h] [--container NAME] [--hub] [-o table|json]: the event history, from --data-dir of a stopped healer or --nats-url of a running one (with --hub, of the hub: the whole fleet)",
			Parse: ParseEventsArgs,
			// Only trouble is worth a line here: stdout is the table.
			LogLevel: "warn",
			Run: func(ctx context.Context, o EventsOptions, cfg config.Config, r program.Run) error {
				return Events(ctx, o, cfg, r.Stdout, r.Log)
			},
		}.Main,
		"check": program.Command[CheckOptions]{
			Name:     "healer check",
			Usage:    "healer check [NAME] [-o table|json]: check the configuration, Docker and the data dir, and explain what the healer does with every container, or with NAME in full, its history included (read from --data-dir of a stopped healer or --nats-url of a running one)",
			Parse:    ParseCheckArgs,
			LogLevel: "warn",
			Run: func(ctx context.Context, o CheckOptions, cfg config.Config, r program.Run) error {
				return Check(ctx, o, cfg, r.Warnings, r.Stdout, r.Log)
			},
		}.Main,
		"test-notify": program.Command[TestNotifyOptions]{
			Name:  "healer test-notify",
			Usage: "healer test-notify [--url URL]: send a test message to every notification target (notify_url, notify_url_file, and the notify_url labels of the selected containers running now), or to URL alone; exit 1 if any failed",
			Parse: ParseTestNotifyArgs,
			Run: func(ctx context.Context, o TestNotifyOptions, cfg config.Config, r program.Run) error {
				// Every target's line is written: nothing more to say.
				return program.Exit(program.ExitFailure, TestNotify(ctx, o, cfg, r.Stdout, r.Stderr))
			},
		}.Main,
		"ui": program.Command[UIOptions]{
			Name:  "healer ui",
			Usage: "healer ui [--hub] --nats-url URL: the status page (<prefix>/ui), JSON and live events of every host, from the hub's fleet stream",
			Parse: ParseUIArgs,
			Run: func(ctx context.Context, o UIOptions, cfg config.Config, r program.Run) error {
				err := ServeUI(ctx, cfg, o.Hub, version, r.Log)
				if err == nil || errors.Is(err, context.Canceled) {
					return nil
				}
				r.Log.Error("healer ui failed", "err", err)
				return program.Exit(program.ExitFailure, err)
			},
		}.Main,
		"pause":  controlCommand("pause"),
		"resume": controlCommand("resume"),
	}
}

func controlCommand(action string) program.Runner {
	return func(ctx context.Context, args []string, env program.Env) int {
		return Control(ctx, action, args, env.Environ, env.Stdout, env.Stderr)
	}
}

// healthcheck is `healer healthcheck`: the running healer's /healthz, for
// the image's HEALTHCHECK.
func healthcheck(ctx context.Context, _ struct{}, cfg config.Config, r program.Run) error {
	for _, w := range r.Warnings {
		r.Log.Warn(w)
	}
	if cfg.HTTPPort == 0 {
		return errors.New("the HTTP endpoint is off (http_port=0)")
	}
	return httpapi.Check(ctx, httpapi.URL(cfg.HTTPAddress, cfg.HTTPPort, cfg.HTTPPrefix)+"/healthz")
}

// UIOptions are the flags of `healer ui`.
type UIOptions struct {
	// Hub reads the hub's fleet stream.
	Hub bool
}

// ParseUIArgs takes --hub out of args and returns the rest, the settings.
func ParseUIArgs(args []string) (UIOptions, []string, error) {
	var o UIOptions
	fs := pflag.NewFlagSet("healer ui", pflag.ContinueOnError)
	fs.BoolVar(&o.Hub, "hub", false, "the hub's fleet stream: every host")
	rest, err := parseOwn(fs, args)
	return o, rest, err
}
