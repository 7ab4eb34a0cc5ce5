package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// The leftover made by real docker-compose: a recreate interrupted right
// after compose renamed the old container to <12 hex>_<name>. Once the new
// container runs (as after a reboot with a restart policy), the cleaner
// removes the leftover.
func TestCleanerRemovesRealComposeLeftover(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed (.ci/run installs Debian's package)")
	}
	label := "hmd-compose-" + env.RunID
	project := "hmdcompose" + strings.ReplaceAll(env.RunID, "-", "")
	canonical := project + "_web_1"
	compose := func(v string, args ...string) *exec.Cmd {
		cmd := exec.Command("docker-compose", append([]string{"-p", project, "-f", "testdata/compose-leftover.yml"}, args...)...)
		cmd.Env = append(os.Environ(), "HMD_IMAGE="+env.Image, "HMD_RUN="+env.RunID, "HMD_LABEL="+label, "V="+v)
		return cmd
	}
	t.Cleanup(func() { _ = compose("1", "down", "--remove-orphans").Run() })
	dockerEvents := env.WatchEvents(t)
	if out, err := compose("1", "up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	dockerEvents.Wait(t, wait, canonical+" healthy", dockertest.Is(canonical, "health_status: healthy"))

	var leftover string
	for attempt := 1; attempt <= 3 && leftover == ""; attempt++ {
		v := string(rune('1' + attempt))
		up := compose(v, "up", "-d")
		if err := up.Start(); err != nil {
			t.Fatal(err)
		}
		// Compose stops the old container, renames it, creates the new one,
		// starts it, and only then removes the old one: stop it at the create.
		dockerEvents.WaitNth(t, wait, "compose creating the new container", attempt+1, dockertest.Is(canonical, "create"))
		_ = up.Process.Kill()
		_ = up.Wait()
		renamed := dockerEvents.WaitNth(t, wait, "compose renaming the old container", attempt, func(e dockertest.Event) bool { return e.Action == "rename" })
		if exists(t, renamed.Name()) {
			leftover = renamed.Name()
		} else {
			t.Logf("attempt %d: compose finished before it was killed; trying again", attempt)
			if out, err := compose(v, "up", "-d").CombinedOutput(); err != nil {
				t.Fatalf("compose up: %v\n%s", err, out)
			}
		}
	}
	if leftover == "" {
		t.Fatal("could not interrupt a compose recreate in 3 attempts")
	}
	t.Logf("compose left %s behind", leftover)
	// The new container may be created only: start it, as the daemon does
	// after a reboot for a container with a restart policy.
	if _, err := dockertest.Docker("start", canonical); err != nil {
		t.Fatal(err)
	}

	h := startHealer(t, t.TempDir(), "--container-label", label, "--clean-duplicates", "--clean-grace", "0")
	removed := h.got.wait(t, time.Minute, "leftover removed", cleanupOf(events.CleanupRemoved, leftover))
	if removed.Data.Canonical != canonical {
		t.Errorf("removed as duplicate of %q, want %q", removed.Data.Canonical, canonical)
	}
	if exists(t, leftover) || !exists(t, canonical) {
		t.Errorf("after cleaning: leftover exists %v, canonical exists %v", exists(t, leftover), exists(t, canonical))
	}
	if st := dockertest.Inspect(t, canonical); !st.Running {
		t.Errorf("canonical %s not running after the cleanup", canonical)
	}
}
