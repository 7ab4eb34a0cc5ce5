package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/healmydocker/healmydocker/internal/app"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// get fetches url with the bearer token and returns the status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one sample from a Prometheus text exposition.
func metric(body, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// The status page, in headless Chromium, lists a fixture container and
// shows its restart once it is healed; the status JSON and the metrics
// agree, and all of it wants the token.
func TestStatusPageJSONAndMetrics(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed (Debian package chromium; .ci/run installs it): %v", err)
	}
	label := "hmd-ui-" + env.RunID
	name := "hmd-ui-" + env.RunID
	const token = "ui-t0ken"
	h := startHealer(t, t.TempDir(), "--container-label", label, "--http-token", token, "--http-prefix", "/hmd")
	testkit.Until(t, 10*time.Second, "the http endpoint to be bound", func() bool { return h.HTTPAddr() != nil })
	base := "http://" + h.HTTPAddr().String() + "/hmd"
	env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}})
	h.got.wait(t, wait, name+" healthy", kindOf(events.DockerHealthy, name))

	if code, _ := get(t, base+"/", ""); code != http.StatusUnauthorized {
		t.Errorf("status without the token: %d, want 401", code)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 800))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first call starts the browser, which lives as long as its
	// context: no timeout on that one, only on the waits after it.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui?token="+token)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	within := func() context.Context {
		c, cancel := context.WithTimeout(ctx, wait)
		t.Cleanup(cancel)
		return c
	}
	row := `tr[data-container="` + name + `"]`
	if err := chromedp.Do(within(),
		chromedp.WaitVisible(row+` td.health.healthy`),
		chromedp.WaitVisible(row+` td.timeline[data-restarts="0"]`),
	); err != nil {
		t.Fatalf("the page did not list %s as healthy: %v", name, err)
	}

	if _, err := dockertest.Docker("exec", name, "/fixture", "ctl", "sick"); err != nil {
		t.Fatal(err)
	}
	h.got.wait(t, wait, name+" restarted", kindOf(events.RestartSucceeded, name))
	if err := chromedp.Do(within(),
		chromedp.WaitVisible(row+` td.timeline[data-restarts="1"] rect.restart`),
		chromedp.WaitVisible(`#feed li[data-type="io.healmydocker.v1.outcome.restart_succeeded"]`),
	); err != nil {
		t.Fatalf("the page did not show the restart of %s: %v", name, err)
	}
	shot, err := chromedp.Run(within(), chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "bin", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		path := filepath.Join(dir, "status-page.png")
		if err := os.WriteFile(path, shot, 0o644); err == nil {
			t.Logf("screenshot: %s (%d bytes)", path, len(shot))
		}
	}
	if len(shot) < 1000 {
		t.Errorf("screenshot of %d bytes", len(shot))
	}

	code, body := get(t, base+"/?limit=3", token)
	if code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	var st app.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status JSON: %v", err)
	}
	if len(st.Events) > 3 || len(st.Events) == 0 {
		t.Errorf("?limit=3 gave %d events", len(st.Events))
	}
	var found bool
	for _, c := range st.Containers {
		if c.Name != name {
			continue
		}
		found = true
		if c.RestartsInFrame != 1 || len(c.Restarts) != 1 || !c.Restarts[0].OK || c.GivenUp || c.State != "running" {
			t.Errorf("status of %s: %+v", name, c)
		}
	}
	if !found {
		t.Errorf("status does not list %s: %s", name, body)
	}

	code, body = get(t, base+"/metrics", token)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for series, want := range map[string]float64{
		`hmd_restarts_total{container="` + name + `",result="ok"}`: 1,
		`hmd_heal_seconds_count`:                                   1,
		`hmd_docker_connected`:                                     1,
	} {
		if v, ok := metric(body, series); !ok || v != want {
			t.Errorf("metric %s = %v (found %v), want %v", series, v, ok, want)
		}
	}
	if v, ok := metric(body, `hmd_docker_events_total{kind="docker.health_unhealthy"}`); !ok || v < 1 {
		t.Errorf("unhealthy events not counted: %v", v)
	}
	if v, ok := metric(body, `hmd_bus_stream_messages`); !ok || v < 5 {
		t.Errorf("stream size %v", v)
	}
	if !strings.Contains(body, "hmd_heal_seconds_bucket") {
		t.Error("no heal latency histogram")
	}
}
