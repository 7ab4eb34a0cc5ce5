package dockertest

import (
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/healmydocker/healmydocker/test/testkit"
)

// Relay passes a unix socket through to the engine's, byte for byte, and
// can be cut (Set, Close): the connection to Docker lost (a daemon
// restart, a socket proxy restarted) while the daemon itself runs on.
type Relay struct{ *testkit.Relay }

// StartRelay listens on a new socket in dir, open.
func StartRelay(dir string) (*Relay, error) {
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "relay.sock"))
	if err != nil {
		return nil, err
	}
	return &Relay{testkit.NewRelay(ln, "unix", target)}, nil
}

// Host is the DOCKER_HOST of the relay.
func (r *Relay) Host() string { return "unix://" + r.Addr().String() }
