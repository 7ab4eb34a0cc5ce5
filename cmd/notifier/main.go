// Command notifier delivers HealMyDocker's events to Slack, Mattermost and
// the services Shoutrrr knows, as its own process on the healer's NATS
// listener. It is also `healer notifier`.
package main

import (
	"os"
	// Time zones for TZ, and CA roots for HTTPS, in a FROM scratch image.
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/healmydocker/healmydocker/internal/cli"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(cli.Main(cli.Notifier(version, commit), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
