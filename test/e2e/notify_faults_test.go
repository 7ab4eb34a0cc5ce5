//go:build faults

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/notify"
	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
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
	h := &hook{t: t, addr: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)), texts: waitlog.New[string]()}
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
	text, err := testkit.SlackText(r)
	if err != nil {
		h.t.Errorf("%v", err)
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
			h.cut = append(h.cut, text)
			h.mu.Unlock()
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	h.texts.Add(text)
}

func (h *hook) all() string {
	return strings.Join(h.texts.All(func(string) bool { return true }), "\n")
}

// waitAll waits until each name's restart was told, then checks that each
// was told once and in the order of names.
func (h *hook) waitAll(t *testing.T, d time.Duration, names ...string) {
	t.Helper()
	testkit.Eventually(t, d, fmt.Sprintf("the restarts of %v to be told", names), func() (string, bool) {
		all := h.all()
		for _, n := range names {
			if !strings.Contains(all, n+": restarted") {
				return n + "'s restart not told; told:\n" + all, false
			}
		}
		return all, true
	})
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
// started again; then its durable is deleted under it. Every restart is
// told, in order; the one request cut by the kill was never answered, so
// it is sent again (the only repeat the receiver can see, and it never
// counted as delivered); after the delete nothing is told twice. A message
// the receiver answered just before the kill, before its ack, would be
// told again: at-least-once cannot do better, and this test does not kill
// there.
func TestFaultSplitNotifierKilledMidDelivery(t *testing.T) {
	t.Parallel()
	label := "hmd-splitkill-" + env.RunID
	rec := newHook(t)
	natsPort := testkit.FreePort(t)
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
	first, firstLog := startNotifier()
	// A first consumer starts at new events: heal once it is there.
	testkit.Until(t, wait, "the split notifier's consumer", func() bool { return strings.Contains(firstLog.String(), "notifier: delivering") })
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
	testkit.Until(t, wait, "the receiver to see the killed notifier's request end", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.cut) > 0
	})
	rec.mu.Lock()
	close(rec.hold)
	rec.hold = nil
	rec.mu.Unlock()
	names = append(names, heal(3)) // while no notifier runs
	_, log := startNotifier()
	rec.waitAll(t, wait, names...)

	// An operator deletes the durable under the restarted notifier, once
	// what it told is acknowledged.
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort), nats.Token("t0ken"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	durable := notify.ConsumerName(rec.url())
	for {
		c, err := js.Consumer(ctx, bus.EventsStream, durable)
		if err != nil {
			t.Fatalf("read the durable: %v", err)
		}
		if st := c.CachedInfo(); st.NumAckPending == 0 && st.NumPending == 0 {
			t.Logf("durable before the delete: delivered %+v, ack floor %+v", st.Delivered, st.AckFloor)
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the notifier never acknowledged what it told")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := js.DeleteConsumer(ctx, bus.EventsStream, durable); err != nil {
		t.Fatalf("delete the durable: %v", err)
	}
	names = append(names, heal(4), heal(5))
	rec.waitAll(t, wait, names...)
	if !strings.Contains(log.String(), "durable consumer disappeared") {
		t.Errorf("the notifier did not log the lost durable:\n%s", log.String())
	}
	// The durable made again right after the delete can come back with
	// the deleted one's state; the notifier deletes it and makes it anew.
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, "came back with the deleted one's state") {
			t.Logf("the durable came back with its old state and was made anew: %s", strings.TrimSpace(l))
		}
	}
	if t.Failed() {
		return
	}
	rec.mu.Lock()
	t.Logf("killed mid-delivery: %d request(s) cut unanswered and sent again; %d restarts told once each, in order, across the kill and a deleted durable (lost: nothing)", len(rec.cut), len(names))
	rec.mu.Unlock()
}
