package waitlog

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Start starts cmd with its stderr in a Buffer, for as long as t runs: it
// is interrupted and waited for when t ends, and its stderr is logged
// under name if t failed. It dies with the test binary: one that outlived
// a crashed test would act on the next test's containers.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Buffer {
	t.Helper()
	stderr := &Buffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, stderr.String())
		}
	})
	return stderr
}
