package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/test/fakedocker"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// hubReader is README's hub reader: it reads the fleet's events and the
// fleet stream, never the routes bucket (its URLs hold tokens) nor the
// hosts' deliveries of it.
func hubReader() *server.User {
	return &server.User{Username: "reader", Password: "reader-pw", Permissions: &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{"$JS.API.STREAM.INFO.HMD_FLEET", "$JS.API.CONSUMER.CREATE.HMD_FLEET.>",
			"$JS.API.CONSUMER.MSG.NEXT.HMD_FLEET.>", "$JS.ACK.HMD_FLEET.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"hmd.>", "_INBOX.>"}},
	}}
}

// routesConfig is README's routes.json: the hub's routes bucket sources
// each host's, delivered under the host's own prefix, with the host's
// name put before each key.
func routesConfig(hosts ...string) string {
	var src []string
	for _, h := range hosts {
		src = append(src, fmt.Sprintf(`  {"name": "KV_HMD_NOTIFY_ROUTES", "external": {"api": "$JS.%[1]s.API", "deliver": "hmd_deliver.%[1]s.routes"},
   "subject_transforms": [{"src": "$KV.HMD_NOTIFY_ROUTES.>", "dest": "$KV.HMD_NOTIFY_ROUTES.%[1]s.>"}]}`, h))
	}
	return `{"name": "KV_HMD_NOTIFY_ROUTES", "subjects": ["$KV.HMD_NOTIFY_ROUTES.>"], "storage": "file",
 "max_msgs_per_subject": 1, "max_bytes": 16777216, "max_msg_size": 65536, "discard": "new",
 "allow_rollup_hdrs": true, "deny_delete": true, "allow_direct": true, "sources": [
` + strings.Join(src, ",\n") + `
]}`
}

// slackReceiver is a loopback Slack-format webhook that keeps the texts.
type slackReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	texts []string
}

func newSlackReceiver(t *testing.T) *slackReceiver {
	r := &slackReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body.Text == "" {
			t.Errorf("not a Slack payload: %v", err)
		}
		r.mu.Lock()
		r.texts = append(r.texts, body.Text)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *slackReceiver) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.texts...)
}

// The central notifier delivers each host's container target from the hub:
// the operator sources every host's routes bucket into the hub's, and a
// target gets its own host's container only, though both hosts name their
// container alike.
func TestCentralNotifierDeliversEachHostsContainerTargets(t *testing.T) {
	hb := startHub(t)
	recs := map[string]*slackReceiver{"host-a": newSlackReceiver(t), "host-b": newSlackReceiver(t)}
	var hosts []*host
	for _, name := range []string{"host-a", "host-b"} {
		// The hosts run no notifier: the hub's delivers.
		hosts = append(hosts, startHost(t, name, hb.leafURL(), name, name+"-pw", "HMD_RUN_NOTIFIER=false"))
	}
	waitJoined(t, hb, hosts...)

	const container = "web"
	id := container + "000000000000"
	for _, h := range hosts {
		h.fake.Add(fakedocker.Container{ID: id, Name: container, Running: true, Health: "healthy", Labels: map[string]string{
			"healme": "true", "healme.notify_url": recs[h.name].URL + "/hooks/" + h.name}})
		h.fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
	}
	for _, h := range hosts {
		deadline := time.Now().Add(wait)
		for !containsCall(h.fake.Calls(), "restart "+id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not restart %s (calls %v)", h.name, container, h.fake.Calls())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	nc, err := nats.Connect(hb.clientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// The hub operator sources the routes once each host has stored one.
	// Hosts answer the hub's requests on $JSC.R only.
	onc, err := nats.Connect(hb.clientURL(), nats.UserInfo("ops", "ops-pw"), nats.CustomInboxPrefix("$JSC.R.ops"))
	if err != nil {
		t.Fatal(err)
	}
	defer onc.Close()
	for _, h := range hosts {
		hjs, err := jetstream.NewWithDomain(onc, h.name)
		if err != nil {
			t.Fatal(err)
		}
		for {
			kv, err := hjs.KeyValue(ctx, "HMD_NOTIFY_ROUTES")
			if err == nil {
				if keys, err := kv.Keys(ctx); err == nil && len(keys) > 0 {
					break
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never stored its container's route: %v", h.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var cfg jetstream.StreamConfig
	if err := json.Unmarshal([]byte(routesConfig("host-a", "host-b")), &cfg); err != nil {
		t.Fatalf("README's routes.json: %v", err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("hub operator: routes bucket: %v", err)
	}

	notifier := exec.Command(healerBin, "notifier")
	notifier.Env = append(os.Environ(), "HMD_NATS_URL="+hb.clientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw",
		"HMD_EVENTS_STREAM=HMD_FLEET", "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=1s", "HMD_HOST_NAME=hub")
	nerr := waitlog.Start(t, "notifier", notifier)

	deadline := time.Now().Add(wait)
	for {
		done := true
		for _, r := range recs {
			done = done && strings.Contains(strings.Join(r.all(), "\n"), ": restarted")
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the central notifier did not deliver every host's restart: host-a got %q, host-b got %q\n%s",
				recs["host-a"].all(), recs["host-b"].all(), nerr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Twice a group window more: a second delivery would be there by now.
	time.Sleep(2 * time.Second)
	for name, r := range recs {
		all := strings.Join(r.all(), "\n")
		other := "host-b"
		if name == "host-b" {
			other = "host-a"
		}
		if n := strings.Count(all, ": restarted"); n != 1 || !strings.Contains(all, "["+name+"]") || strings.Contains(all, "["+other+"]") {
			t.Errorf("%s's target got %d restart(s), want its own host's one only:\n%s", name, n, all)
		}
	}

	// The hub's routes bucket holds tokens: a hub reader cannot read it.
	rerrs := make(chan error, 8)
	rc, err := nats.Connect(hb.clientURL(), nats.UserInfo("reader", "reader-pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { rerrs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rjs, _ := jetstream.New(rc)
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if kv, err := rjs.KeyValue(short, "HMD_NOTIFY_ROUTES"); err == nil {
		if keys, err := kv.Keys(short); err == nil {
			t.Errorf("a hub reader listed the routes bucket: %v", keys)
		}
	}
	if m, err := rc.Request("$JS.API.DIRECT.GET.KV_HMD_NOTIFY_ROUTES", []byte(`{"seq":1}`), 2*time.Second); err == nil && len(m.Data) > 0 {
		t.Errorf("a hub reader read the routes bucket: %s", m.Data)
	}
	for _, subj := range []string{"$KV.HMD_NOTIFY_ROUTES.>", "hmd_deliver.>"} {
		if _, err := rc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-rerrs:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Errorf("subscribe %s: %v, want a permissions violation", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("a hub reader subscribed to %s", subj)
		}
	}
}
