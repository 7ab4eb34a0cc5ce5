package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// A heal on the real engine reaches a Slack-format receiver on loopback.
func TestHealIsNotified(t *testing.T) {
	label := "hmd-notify-" + env.RunID
	name := "hmd-notify-" + env.RunID
	texts := waitlog.New[string]()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &body); err != nil || body.Text == "" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("not a Slack incoming-webhook request: %s %s", r.Header.Get("Content-Type"), b)
		}
		texts.Add(body.Text)
	}))
	defer srv.Close()
	startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", srv.URL+"/hooks/x",
		"--notify-level", "debug", "--notify-group-wait", "500ms")
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "500ms"}})
	text, ok := texts.WaitNth(wait, 1, func(s string) bool { return strings.Contains(s, name+": restarted") })
	if !ok {
		t.Fatalf("no notification of the restart of %s", name)
	}
	if !strings.Contains(text, "health_status: unhealthy") || !strings.Contains(text, "restart 1 in this frame") {
		t.Errorf("notification lacks why or the frame count: %q", text)
	}
}
