// Command cleaner removes the duplicate containers docker-compose leaves
// behind, as its own process. It is also `healer cleaner`.
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
	os.Exit(program.Main(program.Binary{Run: cli.Cleaner(version, commit).Main}, os.Args, program.OS()))
}
