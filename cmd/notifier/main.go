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
	"github.com/healmydocker/healmydocker/internal/program"
)

// Set by the linker.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(program.Main(program.Binary{Run: cli.Notifier(version, commit).Main}, os.Args, program.OS()))
}
