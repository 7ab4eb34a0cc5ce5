// Command cleaner removes the duplicate containers docker-compose leaves
// behind, as its own process. It is also `healer cleaner`.
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
	os.Exit(cli.Main(cli.Cleaner(version, commit), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
