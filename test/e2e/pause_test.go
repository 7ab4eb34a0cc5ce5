package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// healerCmd runs `healer <args>` as a person would next to the healer, and
// returns its output and exit code.
func healerCmd(t *testing.T, environ []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, healerBin, args...)
	cmd.Env = append(os.Environ(), environ...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("healer %v: %v", args, err)
	}
	return string(out), code
}

// Item 3 (#16): healer pause and resume, through the running healer's HTTP
// endpoint: a paused container is recorded and left alone, a pause with an
// end heals at its end, and a pause outlives a restart of the healer.
func TestPauseForMaintenance(t *testing.T) {
	label := "hmd-pause-" + env.RunID
	timed, held := "hmd-pause-timed-"+env.RunID, "hmd-pause-held-"+env.RunID
	token := "pause-token-" + env.RunID
	dockerEvents := env.WatchEvents(t)
	data := t.TempDir()
	port := testkit.FreePort(t)
	args := append([]string{"--container-label", label, "--http-token", token, "--http-port", strconv.Itoa(port)}, fast...)
	h := startHealer(t, data, args...)
	url := fmt.Sprintf("--url=http://127.0.0.1:%d", port)
	withToken := []string{"HMD_HTTP_TOKEN=" + token}
	for _, name := range []string{timed, held} {
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Args: []string{"--health-retries", "3"}})
		dockerEvents.Wait(t, wait, name+" healthy", dockertest.Is(name, "health_status: healthy"))
	}

	// Refused without the token, and for what is not a selected container.
	if out, code := healerCmd(t, nil, "pause", timed, url); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("pause without the token: exit %d, %q; want 1 and 401", code, out)
	}
	if out, code := healerCmd(t, withToken, "pause", "hmd-no-such-"+env.RunID, url); code != 1 || !strings.Contains(out, "no such container") {
		t.Errorf("pause of a missing container: exit %d, %q", code, out)
	}
	if out, code := healerCmd(t, withToken, "pause", timed, "--for", "forever", url); code != 1 || !strings.Contains(out, "--for") {
		t.Errorf("pause --for forever: exit %d, %q", code, out)
	}

	out, code := healerCmd(t, withToken, "pause", timed, "--for", "8s", "--reason", "db upgrade \x1b[31m", url)
	if code != 0 || !strings.Contains(out, timed+": paused until") {
		t.Fatalf("pause: exit %d, %q", code, out)
	}
	p := h.got.wait(t, wait, timed+" paused", kindOf(events.ControlPaused, timed))
	if p.Data.Reason != "db upgrade [31m" || p.Data.Until == nil {
		t.Errorf("pause event reason %q until %v: want the escape character gone and an end", p.Data.Reason, p.Data.Until)
	}
	if out, code = healerCmd(t, withToken, "pause", held, url); code != 0 || !strings.Contains(out, "until healer resume") {
		t.Fatalf("pause without end: exit %d, %q", code, out)
	}
	h.got.wait(t, wait, held+" paused", kindOf(events.ControlPaused, held))

	// While paused: unhealthy is recorded, nothing is done.
	sick(t, timed)
	h.got.wait(t, wait, timed+" left alone while paused", skipped(timed, heal.ReasonMaintenance))
	st := statusJSON(t, h, timed)
	if !st.Paused || st.PauseReason != "db upgrade [31m" {
		t.Errorf("status of %s: paused %v reason %q", timed, st.Paused, st.PauseReason)
	}
	// The pause ends by itself, and the container, still unhealthy, is
	// healed at once.
	r := h.got.wait(t, wait, timed+" pause over", kindOf(events.ControlResumed, timed))
	ok := h.got.wait(t, wait, timed+" healed after the pause", kindOf(events.RestartSucceeded, timed))
	if r.Time.Before(*p.Data.Until) || ok.Time.Before(*p.Data.Until) {
		t.Errorf("resumed at %s, healed at %s: want both after the pause's end %s", r.Time, ok.Time, p.Data.Until)
	}
	if n := len(dockerEvents.All(func(e dockertest.Event) bool {
		return dockertest.Is(timed, "kill")(e) && e.TimeNano < p.Data.Until.UnixNano()
	})); n > 0 {
		t.Errorf("%s killed %d times while paused", timed, n)
	}

	// The other pause outlives the healer: a new one on the same data dir
	// still leaves it alone, until healer resume.
	h.stop()
	h2 := startHealer(t, data, args...)
	sick(t, held)
	h2.got.wait(t, wait, held+" left alone after the healer's restart", skipped(held, heal.ReasonMaintenance))
	if out, code = healerCmd(t, withToken, "resume", held, url); code != 0 || !strings.Contains(out, held+": resumed") {
		t.Fatalf("resume: exit %d, %q", code, out)
	}
	h2.got.wait(t, wait, held+" healed after resume", kindOf(events.RestartSucceeded, held))
	if out, code = healerCmd(t, withToken, "resume", held, url); code != 1 || !strings.Contains(out, "not paused") {
		t.Errorf("second resume: exit %d, %q", code, out)
	}
}

type statusRow struct {
	Name        string `json:"name"`
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason"`
}

// statusJSON is the status JSON's row of container, once the view has it.
func statusJSON(t *testing.T, h *healer, container string) statusRow {
	t.Helper()
	var row statusRow
	testkit.Eventually(t, wait, "the status to show "+container+" paused", func() (string, bool) {
		st, err := h.Status(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		var s struct {
			Containers []statusRow `json:"containers"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		for _, c := range s.Containers {
			if c.Name == container && c.Paused {
				row = c
				return string(b), true
			}
		}
		return string(b), false
	})
	return row
}
