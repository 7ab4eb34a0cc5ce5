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
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	hmd "github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/fakedocker"
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hub is a real nats-server: clients on one port, leaf nodes on another,
// JetStream in domain "hub". It can be stopped and started on the same
// store and ports.
type hub struct {
	t                    *testing.T
	dir                  string
	clientPort, leafPort int
	srv                  *server.Server
}

func startHub(t *testing.T) *hub {
	h := &hub{t: t, dir: t.TempDir(), clientPort: freePort(t), leafPort: freePort(t)}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *hub) start() {
	h.t.Helper()
	opts := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: h.clientPort, NoSigs: true,
		JetStream: true, JetStreamDomain: "hub", StoreDir: h.dir,
		// Leaf users are in the server's users, not in the leaf listener's
		// own list: only there do their permissions apply.
		Users:    append([]*server.User{{Username: "ops", Password: "ops-pw"}, hubReader()}, leafUsers(append(fleetHosts, "host-n")...)...),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: h.leafPort, NoAdvertise: true},
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		h.t.Fatal("hub not ready")
	}
	h.srv = srv
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
	nc, err := nats.Connect(h.clientURL(), nats.UserInfo("ops", "ops-pw"))
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

func (h *hub) stop() {
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

func (h *hub) clientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.clientPort) }
func (h *hub) leafURL() string   { return fmt.Sprintf("nats://127.0.0.1:%d", h.leafPort) }

// fleetEvents reads the whole fleet stream from the hub.
func (h *hub) fleetEvents(t *testing.T) []hmd.Event {
	t.Helper()
	nc, err := nats.Connect(h.clientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "HMD_FLEET")
	if err != nil {
		return nil
	}
	n := s.CachedInfo().State.Msgs
	var out []hmd.Event
	if n == 0 {
		return out
	}
	c, err := js.OrderedConsumer(ctx, "HMD_FLEET", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read the fleet stream: %v", err)
		}
		e, err := hmd.Unmarshal(m.Data())
		if err != nil {
			t.Fatalf("undecodable event in the fleet stream: %v", err)
		}
		out = append(out, e)
	}
	return out
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
	deadline := time.Now().Add(d)
	for {
		evs := h.fleetEvents(t)
		if match(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range evs {
				fmt.Fprintf(&b, "\n  %s %s %s %s", e.Data.Host, e.Subject, e.Kind(), e.Time.Format("15:04:05.000"))
			}
			t.Fatalf("the hub's fleet stream never had %s (%d events):%s", what, len(evs), b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	deadline := time.Now().Add(wait)
	for !strings.Contains(h.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", h.name, text, h.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sick adds a selected container to the host's engine and makes it
// unhealthy; it returns the container's name.
func (h *host) sick(t *testing.T, name string) string {
	t.Helper()
	id := fmt.Sprintf("%-12s", strings.ReplaceAll(name, "-", ""))[:12] + "00"
	h.fake.Add(fakedocker.Container{ID: id, Name: name, Running: true, Health: "healthy", Labels: map[string]string{"healme": "true"}})
	h.fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
	return name
}

// healed waits until the host's engine was asked to restart name.
func (h *host) healed(t *testing.T, name string) {
	t.Helper()
	id := fmt.Sprintf("%-12s", strings.ReplaceAll(name, "-", ""))[:12] + "00"
	deadline := time.Now().Add(wait)
	for !containsCall(h.fake.Calls(), "restart "+id) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not restart %s (calls %v)", h.name, name, h.fake.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsCall(calls []string, c string) bool {
	for _, x := range calls {
		if x == c {
			return true
		}
	}
	return false
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

// proxy is a TCP relay that can cut its links, for one host losing its
// link to the hub while the others keep theirs.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	open   bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, open: true}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if !p.open {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.set(false) })
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

// set opens or cuts the link; cut drops what is connected and refuses more.
func (p *proxy) set(open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = open
	if !open {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// (a) Restarts on all three hosts appear once each in the hub's fleet
// stream; (b) with the hub down every host still heals, and the hub has
// every event after it returns, none twice; (c) one host losing its link
// does not hold up the others, and catches up when it is back.
func TestFleet(t *testing.T) {
	hb := startHub(t)
	px := startProxy(t, fmt.Sprintf("127.0.0.1:%d", hb.leafPort))
	a := startHost(t, "host-a", hb.leafURL(), "host-a", "host-a-pw")
	b := startHost(t, "host-b", hb.leafURL(), "host-b", "host-b-pw")
	c := startHost(t, "host-c", px.url(), "host-c", "host-c-pw")
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
	hb.stop()
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
	px.set(false)
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
	px.set(true)
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
	var mu sync.Mutex
	var texts []string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Text == "" {
			t.Errorf("not a Slack payload: %v", err)
		}
		mu.Lock()
		texts = append(texts, body.Text)
		mu.Unlock()
	}))
	defer rec.Close()
	hosts := []*host{
		startHost(t, "host-a", hb.leafURL(), "host-a", "host-a-pw"),
		startHost(t, "host-b", hb.leafURL(), "host-b", "host-b-pw"),
		startHost(t, "host-c", hb.leafURL(), "host-c", "host-c-pw"),
	}
	waitJoined(t, hb, hosts...)
	notifier := exec.Command(healerBin, "notifier")
	notifier.Env = append(os.Environ(), "HMD_NATS_URL="+hb.clientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw",
		"HMD_EVENTS_STREAM=HMD_FLEET", "HMD_NOTIFY_URL="+rec.URL+"/hooks/fleet", "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=3s", "HMD_HOST_NAME=hub")
	nerr := waitlog.Start(t, "notifier", notifier)
	// The notifier starts at new events: wait for its consumer.
	deadline := time.Now().Add(wait)
	for !strings.Contains(nerr.String(), "notifier started") {
		if time.Now().After(deadline) {
			t.Fatal("the central notifier did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const per = 5
	for _, h := range hosts {
		for i := range per {
			h.sick(t, fmt.Sprintf("storm-%d", i))
		}
	}
	deadline = time.Now().Add(wait)
	for {
		mu.Lock()
		all := strings.Join(texts, "\n")
		n := len(texts)
		mu.Unlock()
		if strings.Count(all, ": restarted") == per*len(hosts) {
			if n > 2 {
				t.Errorf("a storm of %d restarts on %d hosts took %d messages, want one (two at most)", per*len(hosts), len(hosts), n)
			}
			mu.Lock()
			first := texts[0]
			mu.Unlock()
			for _, h := range hosts {
				if !strings.Contains(first, "["+h.name+"]") {
					t.Errorf("the first message does not group %s's restarts:\n%s", h.name, first)
				}
			}
			t.Logf("%d restarts on %d hosts in %d message(s)", per*len(hosts), len(hosts), n)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every restart was told: %d of %d\n%s", strings.Count(all, ": restarted"), per*len(hosts), all)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// (e) A host with wrong leaf credentials says so clearly and heals locally.
func TestWrongLeafCredentials(t *testing.T) {
	hb := startHub(t)
	h := startHost(t, "host-x", hb.leafURL(), "host-x", "wrong-pw")
	deadline := time.Now().Add(wait)
	for !strings.Contains(h.stderr.String(), "refused this host's leaf-node credentials") {
		if time.Now().After(deadline) {
			t.Fatalf("no clear error for wrong leaf credentials:\n%s", h.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	creds := []string{"HMD_NATS_URL=" + hb.clientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw"}
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

	port := freePort(t)
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
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/?limit=5", port))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err == nil && len(st.Hosts) == len(hosts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healer ui --hub never listed %d hosts (%v %+v)\n%s", len(hosts), err, st, uiErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// A host with valid credentials (host-a's, on a leaf node the attacker
// runs) cannot forge another host's events, touch the hub's fleet stream,
// or reach another host's JetStream, history or buckets through the hub.
func TestFleetHostIsConfined(t *testing.T) {
	hb := startHub(t)
	b := startHost(t, "host-b", hb.leafURL(), "host-b", "host-b-pw")
	waitJoined(t, hb, b)

	evil, err := server.NewServer(&server.Options{ServerName: "evil", DontListen: true, NoSigs: true, JetStream: true, JetStreamDomain: "host-a", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 100 * time.Millisecond, Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", hb.leafPort), User: url.UserPassword("host-a", "host-a-pw")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	evil.Start()
	t.Cleanup(evil.Shutdown)
	deadline := time.Now().Add(wait)
	for evil.NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the attacker's leaf never linked with host-a's credentials")
		}
		time.Sleep(20 * time.Millisecond)
	}
	nc, err := nats.Connect("", nats.InProcessServer(evil))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ops, err := nats.Connect(hb.clientURL(), nats.UserInfo("ops", "ops-pw"))
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
	deadline = time.Now().Add(wait)
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
	for _, e := range hb.fleetEvents(t) {
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
	evil, err := server.NewServer(&server.Options{ServerName: "evil", DontListen: true, NoSigs: true, JetStream: true, JetStreamDomain: "host-a", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 100 * time.Millisecond, Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", hb.leafPort), User: url.UserPassword("host-a", "host-a-pw")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	evil.Start()
	t.Cleanup(evil.Shutdown)
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
	deadline := time.Now().Add(wait)
	for evil.NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the attacker's leaf never linked with host-a's credentials")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Made after the link, so the hub sources at once.
	hb.ensureFleet()
	ops, err := nats.Connect(hb.clientURL(), nats.UserInfo("ops", "ops-pw"))
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
	n := startHost(t, "host-n", hb.leafURL(), "host-n", "host-n-pw")
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
	a1 := startHost(t, "host-a", hb.leafURL(), "host-a", "host-a-pw")
	a1.waitLog(t, "hub link up")
	a2 := startHost(t, "host-a", hb.leafURL(), "host-a", "host-a-pw")
	const says = "another host with this host's name is linked to the hub"
	deadline := time.Now().Add(wait)
	for !strings.Contains(a1.stderr.String(), says) && !strings.Contains(a2.stderr.String(), says) {
		if time.Now().After(deadline) {
			t.Fatalf("neither clone said that its name is taken:\n%s\n---\n%s", a1.stderr.String(), a2.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
