// Command healer watches the Docker Engine and restarts selected containers
// that turn unhealthy, recording everything in an embedded NATS JetStream.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	// Time zones for TZ, and CA roots for HTTPS webhooks, in a FROM
	// scratch image that has neither.
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/healmydocker/healmydocker/internal/app"
	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/httpapi"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes: 1 for a failure at run time, 2 for bad configuration.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// One binary serves all three commands: the image links notifier and
	// cleaner to it, which keeps it small.
	switch filepath.Base(os.Args[0]) {
	case "notifier":
		os.Exit(cli.Main(cli.Notifier(version, commit), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	case "cleaner":
		os.Exit(cli.Main(cli.Cleaner(version, commit), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := "run"
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck", "run":
			cmd, args = args[0], args[1:]
		case "events":
			return events(ctx, args[1:], environ, stdout, stderr)
		case "pause", "resume":
			return cli.Control(ctx, args[0], args[1:], environ, stdout, stderr)
		case "ui":
			return ui(ctx, args[1:], environ, stdout, stderr)
		case "test-notify":
			return testNotify(ctx, args[1:], environ, stdout, stderr)
		case "check":
			return check(ctx, args[1:], environ, stdout, stderr)
		case "notifier":
			return cli.Main(cli.Notifier(version, commit), args[1:], environ, stdout, stderr)
		case "cleaner":
			return cli.Main(cli.Cleaner(version, commit), args[1:], environ, stdout, stderr)
		case "--version", "version":
			fmt.Fprintf(stdout, "healer %s (commit %s, %s)\n", version, commit, runtime.Version())
			return 0
		}
	}
	var warnings []string
	cfg, err := config.Load(args, environ, stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "healer: %v\n", err)
		return exitUsage
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	for _, w := range warnings {
		log.Warn(w)
	}

	if cmd == "healthcheck" {
		if cfg.HTTPPort == 0 {
			fmt.Fprintln(stderr, "healer healthcheck: the HTTP endpoint is off (http_port=0)")
			return exitFailure
		}
		if err := httpapi.Check(ctx, httpapi.URL(cfg.HTTPAddress, cfg.HTTPPort, cfg.HTTPPrefix)+"/healthz"); err != nil {
			fmt.Fprintf(stderr, "healer healthcheck: %v\n", err)
			return exitFailure
		}
		return 0
	}

	a, err := app.New(ctx, cfg, log, version)
	if err != nil {
		log.Error("healer cannot start", "err", err)
		return exitFailure
	}
	if err := a.Run(ctx); err != nil {
		log.Error("healer failed", "err", err)
		return exitFailure
	}
	return 0
}

// events is `healer events`: the history from JetStream, and with
// --follow the live events.
func events(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	o, rest, err := cli.ParseEventsArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "healer events: %v\n", err)
		return exitUsage
	}
	cfg, err := config.Load(rest, environ, stdout, func(string) {})
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stdout, "healer events [--follow] [--since 1h] [--container NAME] [--hub] [-o table|json]: the event history, from --data-dir of a stopped healer or --nats-url of a running one (with --hub, of the hub: the whole fleet)")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "healer events: %v\n", err)
		return exitUsage
	}
	// Only trouble is worth a line here: stdout is the table.
	log := logging.New(stderr, cfg.LogFormat, "warn")
	if err := cli.Events(ctx, o, cfg, stdout, log); err != nil {
		fmt.Fprintf(stderr, "healer events: %v\n", err)
		return exitFailure
	}
	return 0
}

// ui is `healer ui [--hub]`: the status page of a stream read over NATS,
// the hub's fleet stream with --hub.
func ui(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	hub := false
	var rest []string
	for _, a := range args {
		if a == "--hub" {
			hub = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, err := config.Load(rest, environ, stdout, func(string) {})
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stdout, "healer ui [--hub] --nats-url URL: the status page (<prefix>/ui), JSON and live events of every host, from the hub's fleet stream")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "healer ui: %v\n", err)
		return exitUsage
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err := cli.ServeUI(ctx, cfg, hub, version, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("healer ui failed", "err", err)
		return exitFailure
	}
	return 0
}
