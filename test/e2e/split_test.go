package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// What README says the cleaner calls; a socket proxy allows nothing else.
var cleanerEndpoints = []string{
	"HEAD /_ping", "GET /_ping", "GET /info", "GET /containers/json",
	"GET /containers/[^/]+/json", "POST /containers/[^/]+/stop", "DELETE /containers/[^/]+",
}

// The split cleaner: its own process, on the healer's NATS listener with a
// password, through a socket proxy that allows only its endpoints. Wrong
// credentials fail clearly.
func TestSplitCleanerThroughSocketProxy(t *testing.T) {
	label := "hmd-split-" + env.RunID
	project := "hmds" + strings.ReplaceAll(env.RunID, "-", "")
	canonical := project + "_web_1"
	dup := "0123456789ab_" + canonical
	natsPort := testkit.FreePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	h := startHealer(t, t.TempDir(), "--container-label", label,
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--nats-user", "hmd", "--nats-password", "s3cret")

	proxy, err := dockertest.StartProxy(t.TempDir(), cleanerEndpoints...)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cleanerEnv := func(password string) []string {
		return append(os.Environ(), "DOCKER_HOST="+proxy.Host(), "HMD_NATS_URL="+natsURL, "HMD_NATS_USER=hmd", "HMD_NATS_PASSWORD="+password,
			"HMD_CONTAINER_LABEL="+label, "HMD_CLEAN_DUPLICATES=true", "HMD_CLEAN_GRACE=0", "HMD_HOST_NAME="+h.Host())
	}

	// Wrong credentials: a clear error, exit 1, and the password not shown.
	bad := exec.Command(cleanerBin)
	bad.Env = cleanerEnv("wrong-password")
	out, err := bad.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !bytes.Contains(bytes.ToLower(out), []byte("authorization violation")) {
		t.Errorf("cleaner with a wrong password: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("wrong-password")) {
		t.Errorf("the password appears in the output:\n%s", out)
	}

	dockerEvents := env.WatchEvents(t)
	env.Run(t, composeSpec(canonical, project, label))
	dockerEvents.Wait(t, wait, canonical+" healthy", dockertest.Is(canonical, "health_status: healthy"))
	startProcess(t, cleanerBin, nil, cleanerEnv("s3cret"))
	// Created after the cleaner started: its create event, carried by the
	// healer's bus, triggers the sweep.
	env.Run(t, composeSpec(dup, project, label))
	removed := h.got.wait(t, wait, "removed by the split cleaner", cleanupOf(events.CleanupRemoved, dup))
	if removed.Data.Canonical != canonical || removed.Data.Host != h.Host() {
		t.Errorf("removal event %+v", removed.Data)
	}
	if exists(t, dup) {
		t.Errorf("%s still exists", dup)
	}
	if d := proxy.Denied(); len(d) > 0 {
		t.Errorf("the cleaner called endpoints beyond README's list: %v", d)
	}
	t.Logf("cleaner calls through the proxy: %d", len(proxy.Seen()))
}
