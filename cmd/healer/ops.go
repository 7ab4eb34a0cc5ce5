package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// testNotify is `healer test-notify [--url URL]`: one test message to
// every configured target, one line per target; exit 1 if any failed.
func testNotify(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	o, rest, err := cli.ParseTestNotifyArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "healer test-notify: %v\n", err)
		return exitUsage
	}
	cfg, err := config.Load(rest, environ, stdout, func(string) {})
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stdout, "healer test-notify [--url URL]: send a test message to every notification target (notify_url, notify_url_file, and the notify_url labels of the selected containers running now), or to URL alone; exit 1 if any failed")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "healer test-notify: %v\n", err)
		return exitUsage
	}
	if err := cli.TestNotify(ctx, o, cfg, stdout, stderr); err != nil {
		return exitFailure
	}
	return 0
}

// check is `healer check [NAME] [-o json]`: the configuration, Docker, the
// data dir and what the healer makes of every container (or of NAME, with
// its history); exit 2 for bad configuration, 1 for Docker or the data dir.
func check(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	o, rest, err := cli.ParseCheckArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "healer check: %v\n", err)
		return exitUsage
	}
	var warnings []string
	cfg, err := config.Load(rest, environ, stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stdout, "healer check [NAME] [-o table|json]: check the configuration, Docker and the data dir, and explain what the healer does with every container, or with NAME in full, its history included (read from --data-dir of a stopped healer or --nats-url of a running one)")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "healer check: %v\n", err)
		return exitUsage
	}
	log := logging.New(stderr, cfg.LogFormat, "warn")
	if err := cli.Check(ctx, o, cfg, warnings, stdout, log); err != nil {
		fmt.Fprintf(stderr, "healer check: %v\n", err)
		return exitFailure
	}
	return 0
}
