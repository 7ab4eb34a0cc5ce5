// Command healer watches the Docker Engine and restarts selected containers
// that turn unhealthy, recording everything in an embedded NATS JetStream.
// The same binary is the notifier and the cleaner, by name or subcommand,
// and holds the healer's subcommands (package cli).
package main

import (
	"context"
	"log/slog"
	"os"
	// Time zones for TZ, and CA roots for HTTPS webhooks, in a FROM
	// scratch image that has neither.
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/healmydocker/healmydocker/internal/app"
	"github.com/healmydocker/healmydocker/internal/cli"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/program"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	healer := program.Daemon{Name: "healer", Version: version, Commit: commit,
		Start: func(ctx context.Context, cfg config.Config, log *slog.Logger) (func(context.Context) error, error) {
			a, err := app.New(ctx, cfg, log, version)
			if err != nil {
				return nil, err
			}
			return a.Run, nil
		},
	}
	notifier, cleaner := cli.Notifier(version, commit).Main, cli.Cleaner(version, commit).Main
	commands := cli.Commands(version)
	commands["run"], commands["notifier"], commands["cleaner"] = healer.Main, notifier, cleaner
	os.Exit(program.Main(program.Binary{
		Run:      healer.Main,
		Commands: commands,
		// The image links notifier and cleaner to this binary.
		Links: map[string]program.Runner{"notifier": notifier, "cleaner": cleaner},
	}, os.Args, program.OS()))
}
