// Package e2e tests the healer against the real Docker Engine, with fixture
// containers built FROM scratch. Without a reachable engine it fails.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/healmydocker/healmydocker/test/dockertest"
)

var (
	env *dockertest.Env
	// healerBin and cleanerBin are built for subprocess tests.
	healerBin, cleanerBin, notifierBin string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) (code int) {
	var err error
	env, err = dockertest.Setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "engine:", env.Engine)
	defer func() {
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}()
	dir, err := os.MkdirTemp("", "hmd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	healerBin, cleanerBin, notifierBin = filepath.Join(dir, "healer"), filepath.Join(dir, "cleaner"), filepath.Join(dir, "notifier")
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/healer", "../../cmd/cleaner", "../../cmd/notifier")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build healer and cleaner: %v: %s\n", err, out)
		return 1
	}
	return m.Run()
}
