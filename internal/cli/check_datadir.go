package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"
)

// checkDataDir looks at the data dir without changing it: a probe file
// is created and removed, and the lock is tried and let go at once.
func checkDataDir(dir string) CheckDataDir {
	d := CheckDataDir{Path: dir}
	if abs, err := filepath.Abs(dir); err == nil {
		d.Path = abs
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// The healer creates it: its parent must be writable.
		d.Writable = writable(filepath.Dir(d.Path))
		if !d.Writable {
			d.Error = "does not exist, and its parent is not writable"
		}
		return d
	case err != nil:
		d.Error = err.Error()
		return d
	case !st.IsDir():
		d.Error = "not a directory"
		return d
	}
	d.Exists = true
	d.Writable = writable(dir)
	if !d.Writable {
		d.Error = "not writable"
	}
	lockPath := filepath.Join(dir, "healer.lock")
	if _, err := os.Stat(lockPath); err == nil {
		l := flock.New(lockPath)
		ok, err := l.TryRLock()
		switch {
		case err != nil:
			d.Error = fmt.Sprintf("lock %s: %v", lockPath, err)
		case !ok:
			d.Locked = true
			if b, err := os.ReadFile(lockPath); err == nil {
				d.PID = strings.TrimSpace(string(b))
			}
		default:
			_ = l.Unlock()
		}
	}
	return d
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".hmd-check-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name) == nil
}
