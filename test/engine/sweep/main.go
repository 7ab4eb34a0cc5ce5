// Command sweep removes what the private Docker daemons of a test run left
// under its run directory (test/dockertest.Sweep): processes, mounts and
// the directory itself. test/engine/run.sh runs it when the tests end, so a
// test binary that crashed or timed out leaves nothing behind.
//
//	go run ./test/engine/sweep RUNDIR
package main

import (
	"fmt"
	"os"

	"github.com/healmydocker/healmydocker/test/dockertest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sweep RUNDIR")
		os.Exit(2)
	}
	if err := dockertest.Sweep(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
