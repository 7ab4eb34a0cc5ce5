package program

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// Daemon is a long-running program: the healer, the notifier, the cleaner.
type Daemon struct {
	Name, Version, Commit string
	// Check refuses settings the program cannot run with, as bad
	// configuration.
	Check func(config.Config) error
	// Component names the program in every log line, when set.
	Component string
	// Start builds the components ("<name> cannot start" if it fails, exit
	// code 1; if ctx ended, a stop while starting, exit code 0) and returns
	// what runs them until ctx ends ("<name> failed").
	Start func(ctx context.Context, cfg config.Config, log *slog.Logger) (run func(context.Context) error, err error)
}

// Main is the Runner of the daemon: --version, the settings (exit code 2
// if they are bad), logging, then Start and its run.
func (d Daemon) Main(ctx context.Context, args []string, env Env) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintf(env.Stdout, "%s %s (commit %s, %s)\n", d.Name, d.Version, d.Commit, runtime.Version())
		return ExitOK
	}
	var warnings []string
	cfg, err := config.LoadProgram(d.Name, args, env.Environ, env.Stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		return ExitOK
	}
	if err == nil && d.Check != nil {
		err = d.Check(cfg)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", d.Name, err)
		return ExitUsage
	}
	log := logging.New(env.Stderr, cfg.LogFormat, cfg.LogLevel)
	if d.Component != "" {
		log = log.With("component", d.Component)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	run, err := d.start(ctx, cfg, log)
	if err != nil && ctx.Err() != nil {
		// Told to stop while starting: a clean stop, whatever the step
		// that the stop cut short says.
		log.Info(d.Name+" stopped while starting", "err", err)
		return ExitOK
	}
	if err != nil {
		log.Error(d.Name+" cannot start", "err", err)
		return ExitFailure
	}
	if err := d.run(ctx, run); err != nil {
		log.Error(d.Name+" failed", "err", err)
		return ExitFailure
	}
	return ExitOK
}

func (d Daemon) start(ctx context.Context, cfg config.Config, log *slog.Logger) (run func(context.Context) error, err error) {
	defer recovered(&err)
	return d.Start(ctx, cfg, log)
}

func (d Daemon) run(ctx context.Context, run func(context.Context) error) (err error) {
	defer recovered(&err)
	return run(ctx)
}
