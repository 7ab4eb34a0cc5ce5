package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// hostFile holds the host name in the data dir: it keys the history and
// the subjects, so it is decided once and kept.
const hostFile = "host-name"

// decideHost is the host name from the one stored in the data dir, the
// one configured, and derive (called only when neither is set). changed
// says that the configured name replaces a different stored one.
func decideHost(stored, configured string, derive func() string) (host string, changed bool) {
	switch {
	case configured != "":
		return configured, stored != "" && stored != configured
	case stored != "":
		return stored, false
	default:
		return derive(), false
	}
}

// hostIdentity decides the host name and stores it in dataDir. A data dir
// that cannot take it is logged: the name is derived again next time.
func hostIdentity(dataDir, configured string, derive func() string, log *slog.Logger) string {
	path := filepath.Join(dataDir, hostFile)
	stored, err := readHost(path)
	if err != nil {
		log.Warn("cannot read the stored host name; deciding it again", "file", path, "err", err)
	}
	host, changed := decideHost(stored, configured, derive)
	if changed {
		log.Warn("host name changed by HMD_HOST_NAME: history and subjects continue under the new name", "old", stored, "new", host)
	}
	if host != stored {
		if err := writeHost(path, host); err != nil {
			log.Warn("cannot store the host name in the data dir; it is decided again at the next start", "file", path, "host", host, "err", err)
		} else if stored == "" {
			log.Info("host name decided and stored", "host", host, "file", path)
		}
	}
	return host
}

func readHost(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeHost replaces the file whole, so a crash leaves the old name or
// the new one.
func writeHost(path, host string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(host+"\n"), 0o640); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
