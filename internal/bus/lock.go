package bus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gofrs/flock"
)

// lockDir creates the data dir and takes its lock.
func (b *Bus) lockDir() error {
	if b.lock != nil {
		return nil
	}
	if err := os.MkdirAll(b.o.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	lockPath := filepath.Join(b.o.DataDir, "healer.lock")
	lock := flock.New(lockPath)
	ok, err := lock.TryLock()
	if err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if !ok {
		return fmt.Errorf("open bus: %s: %w (pid %s)", b.o.DataDir, ErrLocked, readPID(lockPath))
	}
	// The pid is for the error message of the next healer; the lock is the flock.
	_ = os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())), 0o640)
	b.lock = lock
	return nil
}

func (b *Bus) unlock() {
	if b.lock != nil {
		_ = b.lock.Unlock()
	}
}

func readPID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
