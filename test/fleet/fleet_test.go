// Package fleet tests HealMyDocker across hosts: three healers, each a real
// process against its own fake Docker Engine API (three real engines are
// too heavy for one 2-CPU machine; the fake speaks the API subset the
// healer uses), joined as leaf nodes to a real nats-server hub run here.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/testkit/natstest"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

const wait = 30 * time.Second

var healerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hmd-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	healerBin = filepath.Join(dir, "healer")
	build := exec.Command("go", "build", "-o", healerBin, "../../cmd/healer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build healer: %v: %s\n", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hub is the fleet's real nats-server hub, with README's users: the
// operator, the hub reader and each host's leaf user.
type hub struct {
	*natstest.Hub
	t *testing.T
}

func startHub(t *testing.T) *hub {
	users := append([]*server.User{{Username: "ops", Password: "ops-pw"}, hubReader()}, leafUsers(append(fleetHosts, "host-n")...)...)
	return &hub{Hub: natstest.StartHub(t, natstest.HubOptions{Users: users}), t: t}
}

// fleetHosts are the hosts whose events the hub operator sources; host-n
// has credentials but no source yet.
var fleetHosts = []string{"host-a", "host-b", "host-c", "host-x"}

// leafUsers are the hub's per-host leaf users, as README's hub.conf has
// them: a host may send only its own events (hmd.<host>.>), its sourced
// events to its own delivery subject, and replies to the hub's requests
// to its JetStream; it receives only requests for its own domain's API
// and flow control. Permissions are written from the host's side.
func leafUsers(hosts ...string) []*server.User {
	var us []*server.User
	for _, h := range hosts {
		us = append(us, &server.User{Username: h, Password: h + "-pw", AllowedConnectionTypes: map[string]struct{}{"LEAFNODE": {}}, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"hmd." + h + ".>", "hmd_deliver." + h + ".>", "$JSC.R.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"$JS." + h + ".API.>", "$JS.FC.HMD_EVENTS.>", "$JS.FC.KV_HMD_NOTIFY_ROUTES.>"}},
		}})
	}
	return us
}

// ensureFleet is the hub operator's set-up: the fleet stream sources each
// known host's events stream, delivered under that host's own prefix.
func (h *hub) ensureFleet() {
	h.t.Helper()
	nc, err := nats.Connect(h.ClientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var sources []*jetstream.StreamSource
	for _, host := range fleetHosts {
		// The filter keeps what a host stores of another's name out of
		// the fleet: a host vouches only for its own subjects.
		sources = append(sources, &jetstream.StreamSource{Name: "HMD_EVENTS", FilterSubject: "hmd." + host + ".>", External: &jetstream.ExternalStream{
			APIPrefix: "$JS." + host + ".API", DeliverPrefix: "hmd_deliver." + host}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "HMD_FLEET", Storage: jetstream.FileStorage, Sources: sources}); err != nil {
		h.t.Fatalf("hub operator: fleet stream: %v", err)
	}
}

func (h *hub) start() {
	h.t.Helper()
	if err := h.Start(); err != nil {
		h.t.Fatal(err)
	}
}

// fleetEvents reads the whole fleet stream from the hub; a stream not
// made yet reads as none.
func (h *hub) fleetEvents() ([]hmd.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := natstest.ReadStreamAt(ctx, h.ClientURL(), "HMD_FLEET", nats.UserInfo("ops", "ops-pw"))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return evs, err
}

// waitFleet waits until the fleet stream holds what match wants.
func (h *hub) waitFleet(t *testing.T, what string, match func([]hmd.Event) bool) []hmd.Event {
	t.Helper()
	return h.waitFleetFor(t, wait, what, match)
}

func (h *hub) waitFleetFor(t *testing.T, d time.Duration, what string, match func([]hmd.Event) bool) []hmd.Event {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("the fleet stream had %s after %s", what, time.Since(start).Round(time.Millisecond)) }()
	last := testkit.Eventually(t, d, what+" in the hub's fleet stream", func() (fleetSeen, bool) {
		evs, err := h.fleetEvents()
		return fleetSeen{evs, err}, err == nil && match(evs)
	})
	return last.evs
}

// fleetSeen is one read of the fleet stream, printed when a wait gives up.
type fleetSeen struct {
	evs []hmd.Event
	err error
}

func (s fleetSeen) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events", len(s.evs))
	if s.err != nil {
		fmt.Fprintf(&b, " (%v)", s.err)
	}
	for _, e := range s.evs {
		fmt.Fprintf(&b, "\n  %s %s %s %s", e.Data.Host, e.Subject, e.Kind(), e.Time.Format("15:04:05.000"))
	}
	return b.String()
}

// restarted counts restart_succeeded events of container on host.
func restarted(evs []hmd.Event, host, container string) int {
	n := 0
	for _, e := range evs {
		if e.Kind() == hmd.RestartSucceeded && e.Data.Host == host && e.Subject == container {
			n++
		}
	}
	return n
}

func noDuplicates(t *testing.T, evs []hmd.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			t.Errorf("event %s (%s %s) is in the fleet stream twice", e.ID, e.Data.Host, e.Kind())
		}
		seen[e.ID] = true
	}
}

// host is one healer process against its own fake engine.
type host struct {
	name   string
	fake   *fakedocker.Server
	stderr *waitlog.Buffer
}

func startHost(t *testing.T, name, hubURL, leafUser, leafPass string, env ...string) *host {
	t.Helper()
	dir := t.TempDir()
	fake, err := fakedocker.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	cmd := exec.Command(healerBin)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+fake.Host(), "HMD_DATA_DIR="+filepath.Join(dir, "data"), "HMD_HTTP_PORT=0",
		"HMD_HOST_NAME="+name, "HMD_HUB_URL="+hubURL, "HMD_HUB_USER="+leafUser, "HMD_HUB_PASSWORD="+leafPass)
	cmd.Env = append(cmd.Env, env...)
	return &host{name: name, fake: fake, stderr: waitlog.Start(t, name, cmd)}
}

// waitLog waits until the host's log has text.
func (h *host) waitLog(t *testing.T, text string) {
	t.Helper()
	testkit.Eventually(t, wait, fmt.Sprintf("%q in %s's log", text, h.name), func() (string, bool) {
		log := h.stderr.String()
		return log, strings.Contains(log, text)
	})
}

// sick adds a selected container to the host's engine and makes it
// unhealthy; it returns the container's name.
func (h *host) sick(t *testing.T, name string) string {
	t.Helper()
	id := fmt.Sprintf("%-12s", strings.ReplaceAll(name, "-", ""))[:12] + "00"
	h.sickWith(id, name, map[string]string{"healme": "true"})
	return name
}

// sickWith adds container id named name with labels, healthy, and makes
// it unhealthy.
func (h *host) sickWith(id, name string, labels map[string]string) {
	h.fake.Add(fakedocker.Container{ID: id, Name: name, Running: true, Health: "healthy", Labels: labels})
	h.fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
}

// healed waits until the host's engine was asked to restart name.
func (h *host) healed(t *testing.T, name string) {
	t.Helper()
	id := fmt.Sprintf("%-12s", strings.ReplaceAll(name, "-", ""))[:12] + "00"
	h.restarted(t, id)
}

// restarted waits until the host's engine was asked to restart id.
func (h *host) restarted(t *testing.T, id string) {
	t.Helper()
	testkit.Eventually(t, wait, fmt.Sprintf("a restart of %s on %s (calls)", id, h.name), func() ([]string, bool) {
		calls := h.fake.Calls()
		return calls, slices.Contains(calls, "restart "+id)
	})
}

// waitReady waits until the host's events reach the fleet stream.
func waitJoined(t *testing.T, hb *hub, hosts ...*host) {
	t.Helper()
	// The operator adds the sources once the hosts are linked: a source
	// tried before its host is there is retried only after a backoff.
	for _, h := range hosts {
		h.waitLog(t, "hub link up")
	}
	hb.ensureFleet()
	hb.waitFleet(t, "every host's healer.started", func(evs []hmd.Event) bool {
		for _, h := range hosts {
			found := false
			for _, e := range evs {
				found = found || e.Kind() == hmd.HealerStarted && e.Data.Host == h.name
			}
			if !found {
				return false
			}
		}
		return true
	})
}

// startProxy is a TCP relay that can cut its links, for one host losing
// its link to the hub while the others keep theirs.
func startProxy(t *testing.T, target string) *testkit.Relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := testkit.NewRelay(ln, "tcp", target)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// (a) Restarts on all three hosts appear once each in the hub's fleet
// stream; (b) with the hub down every host still heals, and the hub has
// every event after it returns, none twice; (c) one host losing its link
// does not hold up the others, and catches up when it is back.
func TestFleet(t *testing.T) {
	hb := startHub(t)
	px := startProxy(t, fmt.Sprintf("127.0.0.1:%d", hb.LeafPort))
	a := startHost(t, "host-a", hb.LeafURL(), "host-a", "host-a-pw")
	b := startHost(t, "host-b", hb.LeafURL(), "host-b", "host-b-pw")
	c := startHost(t, "host-c", "nats://"+px.Addr().String(), "host-c", "host-c-pw")
	hosts := []*host{a, b, c}
	waitJoined(t, hb, hosts...)

	// (a)
	for _, h := range hosts {
		h.sick(t, "web-a")
	}
	for _, h := range hosts {
		h.healed(t, "web-a")
	}
	evs := hb.waitFleet(t, "the restart on every host", func(evs []hmd.Event) bool {
		return restarted(evs, "host-a", "web-a") == 1 && restarted(evs, "host-b", "web-a") == 1 && restarted(evs, "host-c", "web-a") == 1
	})
	noDuplicates(t, evs)
	checkHubViews(t, hb, hosts)

	// (b) The hub goes down: every host heals on its own.
	hb.Stop()
	for _, h := range hosts {
		h.sick(t, "web-b")
	}
	for _, h := range hosts {
		h.healed(t, "web-b")
	}
	hb.start()
	evs = hb.waitFleetFor(t, 3*time.Minute, "the restarts made while the hub was down", func(evs []hmd.Event) bool {
		for _, h := range hosts {
			if restarted(evs, h.name, "web-b") != 1 {
				return false
			}
		}
		return true
	})
	noDuplicates(t, evs)
	for _, h := range hosts {
		if n := restarted(evs, h.name, "web-a"); n != 1 {
			t.Errorf("%s's first restart is in the fleet stream %d times", h.name, n)
		}
	}

	// (c) host-c loses its link; the others' events still arrive.
	px.Set(false)
	for _, h := range hosts {
		h.sick(t, "web-c")
		h.healed(t, "web-c")
	}
	evs = hb.waitFleet(t, "host-a's and host-b's restarts", func(evs []hmd.Event) bool {
		return restarted(evs, "host-a", "web-c") == 1 && restarted(evs, "host-b", "web-c") == 1
	})
	if n := restarted(evs, "host-c", "web-c"); n != 0 {
		t.Errorf("host-c's restart reached the hub through a cut link (%d)", n)
	}
	px.Set(true)
	evs = hb.waitFleet(t, "host-c's restart after its link came back", func(evs []hmd.Event) bool {
		return restarted(evs, "host-c", "web-c") == 1
	})
	noDuplicates(t, evs)
	if !strings.Contains(c.stderr.String(), "hub link down") {
		t.Errorf("host-c did not log that its hub link went down")
	}
}

// (d) A central notifier on the hub sends one grouped message for a storm
// across hosts.
func TestCentralNotifierGroupsAStormAcrossHosts(t *testing.T) {
	hb := startHub(t)
	rec := testkit.NewSlack(t)
	hosts := []*host{
		startHost(t, "host-a", hb.LeafURL(), "host-a", "host-a-pw"),
		startHost(t, "host-b", hb.LeafURL(), "host-b", "host-b-pw"),
		startHost(t, "host-c", hb.LeafURL(), "host-c", "host-c-pw"),
	}
	waitJoined(t, hb, hosts...)
	notifier := exec.Command(healerBin, "notifier")
	notifier.Env = append(os.Environ(), "HMD_NATS_URL="+hb.ClientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw",
		"HMD_EVENTS_STREAM=HMD_FLEET", "HMD_NOTIFY_URL="+rec.URL+"/hooks/fleet", "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=3s", "HMD_HOST_NAME=hub")
	nerr := waitlog.Start(t, "notifier", notifier)
	// The notifier starts at new events: wait for its consumer, not for
	// the process ("notifier started" comes before the consumer is made).
	testkit.Eventually(t, wait, "the central notifier's consumer", func() (string, bool) {
		log := nerr.String()
		return log, strings.Contains(log, "notifier: delivering")
	})

	const per = 5
	for _, h := range hosts {
		for i := range per {
			h.sick(t, fmt.Sprintf("storm-%d", i))
		}
	}
	testkit.Eventually(t, wait, "a message for every restart", func() (string, bool) {
		all := rec.Joined()
		return all, strings.Count(all, ": restarted") == per*len(hosts)
	})
	all := rec.All()
	if n := len(all); n > 2 {
		t.Errorf("a storm of %d restarts on %d hosts took %d messages, want one (two at most)", per*len(hosts), len(hosts), n)
	}
	for _, h := range hosts {
		if !strings.Contains(all[0], "["+h.name+"]") {
			t.Errorf("the first message does not group %s's restarts:\n%s", h.name, all[0])
		}
	}
	t.Logf("%d restarts on %d hosts in %d message(s)", per*len(hosts), len(hosts), len(all))
}

// (e) A host with wrong leaf credentials says so clearly and heals locally.
func TestWrongLeafCredentials(t *testing.T) {
	hb := startHub(t)
	h := startHost(t, "host-x", hb.LeafURL(), "host-x", "wrong-pw")
	h.waitLog(t, "refused this host's leaf-node credentials")
	if strings.Contains(h.stderr.String(), "wrong-pw") {
		t.Error("the log shows the leaf password")
	}
	h.sick(t, "web")
	h.healed(t, "web")
	if n := strings.Count(h.stderr.String(), "refused this host's leaf-node credentials"); n > 2 {
		t.Errorf("the refusal was logged %d times in a few seconds; once a minute is enough", n)
	}
}

// checkHubViews: `healer events --hub` prints the fleet's history, and
// `healer ui --hub` serves every host's containers.
func checkHubViews(t *testing.T, hb *hub, hosts []*host) {
	t.Helper()
	creds := []string{"HMD_NATS_URL=" + hb.ClientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw"}
	ev := exec.Command(healerBin, "events", "--hub", "--container", "web-a")
	ev.Env = append(os.Environ(), creds...)
	out, err := ev.CombinedOutput()
	if err != nil {
		t.Fatalf("healer events --hub: %v\n%s", err, out)
	}
	for _, h := range hosts {
		if !strings.Contains(string(out), h.name) || strings.Count(string(out), "outcome.restart_succeeded") != len(hosts) {
			t.Errorf("healer events --hub lacks %s's restart:\n%s", h.name, out)
		}
	}

	port := testkit.FreePort(t)
	ui := exec.Command(healerBin, "ui", "--hub")
	ui.Env = append(os.Environ(), append(creds, fmt.Sprintf("HMD_HTTP_PORT=%d", port))...)
	uiErr := waitlog.Start(t, "healer ui", ui)
	var st struct {
		Fleet      bool     `json:"fleet"`
		Hosts      []string `json:"hosts"`
		Containers []struct {
			Host, Name string
			Restarts   []struct{ OK bool }
		} `json:"containers"`
	}
	testkit.Eventually(t, wait, fmt.Sprintf("healer ui --hub to list %d hosts", len(hosts)), func() (string, bool) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/?limit=5", port))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		return fmt.Sprintf("%v %+v\n%s", err, st, uiErr.String()), err == nil && len(st.Hosts) == len(hosts)
	})
	for _, h := range hosts {
		found := false
		for _, c := range st.Containers {
			found = found || c.Host == h.name && c.Name == "web-a" && len(c.Restarts) == 1 && c.Restarts[0].OK
		}
		if !found {
			t.Errorf("healer ui --hub does not show %s's web-a restart: %+v", h.name, st.Containers)
		}
	}
}

// startEvilLeaf is an attacker's leaf node in host-a's domain, linking to
// the hub with host-a's valid credentials.
func startEvilLeaf(t *testing.T, hb *hub) *server.Server {
	t.Helper()
	evil, err := server.NewServer(&server.Options{ServerName: "evil", DontListen: true, NoSigs: true, JetStream: true, JetStreamDomain: "host-a", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 100 * time.Millisecond, Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", hb.LeafPort), User: url.UserPassword("host-a", "host-a-pw")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	evil.Start()
	t.Cleanup(evil.Shutdown)
	return evil
}

// A host with valid credentials (host-a's, on a leaf node the attacker
// runs) cannot forge another host's events, touch the hub's fleet stream,
// or reach another host's JetStream, history or buckets through the hub.
func TestFleetHostIsConfined(t *testing.T) {
	hb := startHub(t)
	b := startHost(t, "host-b", hb.LeafURL(), "host-b", "host-b-pw")
	waitJoined(t, hb, b)

	evil := startEvilLeaf(t, hb)
	testkit.Until(t, wait, "the attacker's leaf to link with host-a's credentials", func() bool { return evil.NumLeafNodes() > 0 })
	nc, err := nats.Connect("", nats.InProcessServer(evil))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ops, err := nats.Connect(hb.ClientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	ojs, _ := jetstream.New(ops)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before, err := ojs.Stream(ctx, "HMD_FLEET")
	if err != nil {
		t.Fatal(err)
	}
	fleetBefore := before.CachedInfo()

	// Forged events: another host's subject is dropped at the hub; its
	// own still goes through (so the link works), after the forged one.
	sub, err := ops.SubscribeSync("hmd.>")
	if err != nil {
		t.Fatal(err)
	}
	_ = ops.Flush()
	var got *nats.Msg
	deadline := time.Now().Add(wait)
	for got == nil {
		// Interest reaches the leaf a moment after the subscription.
		_ = nc.Publish("hmd.host-b.web.outcome.restart_succeeded", []byte("forged"))
		_ = nc.Publish("hmd.host-a.web.outcome.restart_succeeded", []byte("own"))
		_ = nc.Flush()
		for {
			m, err := sub.NextMsg(200 * time.Millisecond)
			if err != nil {
				break
			}
			if string(m.Data) == "forged" {
				t.Fatalf("host-a's credentials published %s on the hub", m.Subject)
			}
			if string(m.Data) == "own" {
				got = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("host-a's own events never reached the hub: the test proves nothing")
		}
	}

	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	hubJS, _ := jetstream.NewWithDomain(nc, "hub")
	if _, err := hubJS.UpdateStream(short(), jetstream.StreamConfig{Name: "HMD_FLEET", Storage: jetstream.FileStorage}); err == nil {
		t.Error("host-a updated the hub's fleet stream")
	}
	if err := hubJS.DeleteStream(short(), "HMD_FLEET"); err == nil {
		t.Error("host-a deleted the hub's fleet stream")
	}
	if s, err := hubJS.Stream(short(), "HMD_FLEET"); err == nil {
		t.Errorf("host-a reads the hub's fleet stream")
		if err := s.Purge(short()); err == nil {
			t.Error("host-a purged the hub's fleet stream")
		}
	}
	if _, err := hubJS.CreateStream(short(), jetstream.StreamConfig{Name: "HMD_FLEET_EVIL", Subjects: []string{"evil.>"}}); err == nil {
		t.Error("host-a made a stream on the hub")
	}
	bJS, _ := jetstream.NewWithDomain(nc, "host-b")
	if _, err := bJS.Stream(short(), "HMD_EVENTS"); err == nil {
		t.Error("host-a reached host-b's events stream through the hub")
	}
	if kv, err := bJS.KeyValue(short(), "HMD_NOTIFY_ROUTES"); err == nil {
		if _, err := kv.Get(short(), "x"); err == nil || !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Error("host-a reached host-b's routes bucket through the hub")
		}
		t.Error("host-a opened host-b's routes bucket through the hub")
	}
	for _, subj := range []string{"$JS.host-b.API.STREAM.NAMES", "$JS.host-b.API.DIRECT.GET.KV_hmd_history.$KV.hmd_history.x", "$KV.hmd_history.x", "$JS.hub.API.STREAM.PURGE.HMD_FLEET"} {
		if m, err := nc.Request(subj, nil, time.Second); err == nil {
			t.Errorf("host-a's request on %s got an answer: %s", subj, m.Data)
		}
	}

	after, err := ojs.Stream(ctx, "HMD_FLEET")
	if err != nil {
		t.Fatalf("the fleet stream is gone: %v", err)
	}
	fa := after.CachedInfo()
	if len(fa.Config.Sources) != len(fleetBefore.Config.Sources) || fa.State.Msgs < fleetBefore.State.Msgs || fa.State.FirstSeq != fleetBefore.State.FirstSeq {
		t.Errorf("the fleet stream changed under host-a's credentials: %d sources (was %d), %d events from %d (was %d from %d)",
			len(fa.Config.Sources), len(fleetBefore.Config.Sources), fa.State.Msgs, fa.State.FirstSeq, fleetBefore.State.Msgs, fleetBefore.State.FirstSeq)
	}
	evs, err := hb.fleetEvents()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Data.Host == "host-b" && e.Subject == "web" {
			t.Errorf("a forged host-b event is in the fleet stream: %+v", e)
		}
	}
}

// A host that stores events in another host's name in its own stream
// (its leaf user cannot publish them live) gets none of them into the
// fleet: each source takes only its host's subjects.
func TestFleetForgedEventsInAHostsStreamAreNotSourced(t *testing.T) {
	hb := startHub(t)
	evil := startEvilLeaf(t, hb)
	nc, err := nats.Connect("", nats.InProcessServer(evil))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HMD_EVENTS", Subjects: []string{"hmd.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "hmd.host-b.web.outcome.restart_succeeded", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "hmd.host-a.web.outcome.restart_succeeded", []byte("own")); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, wait, "the attacker's leaf to link with host-a's credentials", func() bool { return evil.NumLeafNodes() > 0 })
	// Made after the link, so the hub sources at once.
	hb.ensureFleet()
	ops, err := nats.Connect(hb.ClientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	ojs, _ := jetstream.New(ops)
	fleet, err := ojs.Stream(ctx, "HMD_FLEET")
	if err != nil {
		t.Fatal(err)
	}
	var own bool
	for !own {
		if _, err := fleet.GetLastMsgForSubject(ctx, "hmd.host-a.web.outcome.restart_succeeded"); err == nil {
			own = true
		} else if ctx.Err() != nil {
			t.Fatal("host-a's own event never reached the fleet: the test proves nothing")
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if m, err := fleet.GetLastMsgForSubject(ctx, "hmd.host-b.web.outcome.restart_succeeded"); err == nil {
		t.Errorf("a forged host-b event from host-a's stream is in the fleet: %s", m.Data)
	}
}

// A host the operator has not added to the fleet stream says what to add.
func TestFleetHostWithoutSourceSaysSo(t *testing.T) {
	hb := startHub(t)
	hb.ensureFleet()
	n := startHost(t, "host-n", hb.LeafURL(), "host-n", "host-n-pw")
	n.waitLog(t, "hub link up")
	n.waitLog(t, "the hub operator must add this host")
	if !strings.Contains(n.stderr.String(), `$JS.host-n.API`) || !strings.Contains(n.stderr.String(), `hmd_deliver.host-n`) {
		t.Errorf("the log does not name the source to add:\n%s", n.stderr.String())
	}
}

// Two hosts cloned from one image share a name: the hub keeps one link
// at a time, and the healers say why.
func TestFleetDuplicateHostNameIsNamed(t *testing.T) {
	hb := startHub(t)
	a1 := startHost(t, "host-a", hb.LeafURL(), "host-a", "host-a-pw")
	a1.waitLog(t, "hub link up")
	a2 := startHost(t, "host-a", hb.LeafURL(), "host-a", "host-a-pw")
	const says = "another host with this host's name is linked to the hub"
	testkit.Eventually(t, wait, "a clone to say that its name is taken", func() (string, bool) {
		l1, l2 := a1.stderr.String(), a2.stderr.String()
		return l1 + "\n---\n" + l2, strings.Contains(l1, says) || strings.Contains(l2, says)
	})
}
