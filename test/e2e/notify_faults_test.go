//go:build faults

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// hook is a Slack-format receiver on a fixed loopback port that can go
// down (the port closed: connection refused) and come back. It counts a
// message as delivered only once it answered it: a request whose sender
// went away before the answer is recorded as cut.
type hook struct {
	t     *testing.T
	addr  string
	mu    sync.Mutex
	srv   *http.Server
	hold  chan struct{} // while set, requests wait on it or the sender
	held  chan struct{} // told when a request is held
	texts *waitlog.Log[string]
	cut   []string
}

func newHook(t *testing.T) *hook {
	h := &hook{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), texts: waitlog.New[string]()}
	h.up()
	t.Cleanup(h.down)
	return h
}

func (h *hook) url() string { return "http://" + h.addr + "/hooks/outage" }

func (h *hook) up() {
	h.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatalf("receiver back on %s: %v", h.addr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(h.serve)}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (h *hook) down() {
	h.mu.Lock()
	srv := h.srv
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Text == "" || r.Header.Get("Content-Type") != "application/json" {
		h.t.Errorf("not a Slack incoming-webhook request: %s %s", r.Header.Get("Content-Type"), b)
	}
	h.mu.Lock()
	hold, held := h.hold, h.held
	h.mu.Unlock()
	if hold != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-r.Context().Done():
			h.mu.Lock()
			h.cut = append(h.cut, body.Text)
			h.mu.Unlock()
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	h.texts.Add(body.Text)
}

func (h *hook) all() string {
	return strings.Join(h.texts.All(func(string) bool { return true }), "\n")
}

// waitAll waits until each name's restart was told, then checks that each
// was told once and in the order of names.
func (h *hook) waitAll(t *testing.T, d time.Duration, names ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		all, missing := h.all(), ""
		for _, n := range names {
			if !strings.Contains(all, n+": restarted") {
				missing = n
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's restart was never told; told:\n%s", missing, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
	all, at := h.all(), -1
	for _, n := range names {
		if c := strings.Count(all, n+": restarted (health_status: unhealthy), restart 1 "); c != 1 {
			t.Errorf("%s's restart told %d times, want once; told:\n%s", n, c, all)
		}
		if p := strings.Index(all, n+": restarted"); p < at {
			t.Errorf("%s's restart told out of order:\n%s", n, all)
		} else {
			at = p
		}
	}
}

// The receiver is down for 5 minutes (its port closed) while containers
// are healed: once it is back every restart is told once, in order.
// Parallel: its five minutes overlap the rest of the suite.
func TestFaultNotifyReceiverDownFiveMinutes(t *testing.T) {
	t.Parallel()
	const outage = 5 * time.Minute
	label := "hmd-outage-" + env.RunID
	rec := newHook(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--notify-url", rec.url(), "--notify-level", "debug",
		"--notify-group-wait", "500ms", "--notify-max-backoff", "10s")
	sick := map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}
	heal := func(i int) string {
		name := fmt.Sprintf("hmd-outage-%d-%s", i, env.RunID)
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: sick})
		h.got.wait(t, wait, name+" healed", kindOf(events.RestartSucceeded, name))
		return name
	}
	names := []string{heal(0)}
	rec.waitAll(t, wait, names...)
	before := len(rec.texts.All(func(string) bool { return true }))
	rec.down()
	down := time.Now()
	// Heals spread over the outage.
	for i := 1; i <= 3; i++ {
		names = append(names, heal(i))
		if i < 3 {
			time.Sleep(90 * time.Second) // the outage itself: the fault being tested
		}
	}
	if n := len(rec.texts.All(func(string) bool { return true })); n != before {
		t.Fatalf("%d messages arrived at a receiver that was down", n)
	}
	time.Sleep(outage - time.Since(down)) // the rest of the outage
	rec.up()
	back := time.Now()
	rec.waitAll(t, 2*wait, names...)
	if t.Failed() {
		return
	}
	t.Logf("receiver down %s; every restart told once, in order, %s after it came back (lost: nothing)", back.Sub(down).Round(time.Second), time.Since(back).Round(time.Millisecond))
}

// A split notifier is killed (kill -9) while a delivery is under way, and
// started again. Every restart is told, in order; the one request cut by
// the kill was never answered, so it is sent again (the only repeat the
// receiver can see, and it never counted as delivered).
func TestFaultSplitNotifierKilledMidDelivery(t *testing.T) {
	t.Parallel()
	label := "hmd-splitkill-" + env.RunID
	rec := newHook(t)
	natsPort := freePort(t)
	h := startHealer(t, t.TempDir(), "--container-label", label, "--run-notifier=false",
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--nats-token", "t0ken")
	environ := append(os.Environ(), fmt.Sprintf("HMD_NATS_URL=nats://127.0.0.1:%d", natsPort), "HMD_NATS_TOKEN=t0ken",
		"HMD_NOTIFY_URL="+rec.url(), "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=300ms", "HMD_NOTIFY_MAX_BACKOFF=2s", "HMD_LOG_LEVEL=debug")
	startNotifier := func() (*exec.Cmd, *waitlog.Buffer) {
		cmd := exec.Command(notifierBin)
		cmd.Env = environ
		return cmd, waitlog.Start(t, "notifier", cmd)
	}
	sick := map[string]string{"FIXTURE_SICK_RUNS": "1", "FIXTURE_UNHEALTHY_AFTER": "300ms"}
	heal := func(i int) string {
		name := fmt.Sprintf("hmd-splitkill-%d-%s", i, env.RunID)
		env.Run(t, dockertest.Spec{Name: name, Labels: map[string]string{label: "true"}, Env: sick})
		h.got.wait(t, wait, name+" healed", kindOf(events.RestartSucceeded, name))
		return name
	}
	first, _ := startNotifier()
	names := []string{heal(0)}
	rec.waitAll(t, wait, names...)

	// The receiver holds the next request; the notifier is killed in it.
	rec.mu.Lock()
	rec.hold, rec.held = make(chan struct{}), make(chan struct{}, 1)
	held := rec.held
	rec.mu.Unlock()
	names = append(names, heal(1), heal(2))
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("no delivery reached the receiver")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		rec.mu.Lock()
		n := len(rec.cut)
		rec.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the receiver never saw the killed notifier's request end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec.mu.Lock()
	close(rec.hold)
	rec.hold = nil
	rec.mu.Unlock()
	names = append(names, heal(3)) // while no notifier runs
	_, log := startNotifier()
	rec.waitAll(t, wait, names...)

	// An operator deleting the durable under a running notifier is tested
	// in internal/notify (TestRunnerRemakesADeletedDurable), on a real
	// server and receiver. Here, after a kill and a restart of the process,
	// the recreated durable told part of the batch again in every run: an
	// open defect, named in the README, that this test does not hide.
	_ = log
	if t.Failed() {
		return
	}
	rec.mu.Lock()
	t.Logf("killed mid-delivery: %d request(s) cut unanswered and sent again; %d restarts told once each, in order, across the kill (lost: nothing)", len(rec.cut), len(names))
	rec.mu.Unlock()
}
