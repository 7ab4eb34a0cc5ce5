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
	"runtime"
	"syscall"

	"github.com/healmydocker/healmydocker/internal/app"
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
