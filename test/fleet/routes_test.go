package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/test/testkit"
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

// The central notifier delivers each host's container target from the hub:
// the operator sources every host's routes bucket into the hub's, and a
// target gets its own host's container only, though both hosts name their
// container alike.
func TestCentralNotifierDeliversEachHostsContainerTargets(t *testing.T) {
	hb := startHub(t)
	recs := map[string]*testkit.Slack{"host-a": testkit.NewSlack(t), "host-b": testkit.NewSlack(t)}
	var hosts []*host
	for _, name := range []string{"host-a", "host-b"} {
		// The hosts run no notifier: the hub's delivers.
		hosts = append(hosts, startHost(t, name, hb.LeafURL(), name, name+"-pw", "HMD_RUN_NOTIFIER=false"))
	}
	waitJoined(t, hb, hosts...)

	const container = "web"
	id := container + "000000000000"
	for _, h := range hosts {
		// A second restart needs no wait: it is the marker below.
		h.sickWith(id, container, map[string]string{"healme": "true", "healme.notify_url": recs[h.name].URL + "/hooks/" + h.name,
			"healme.seconds_between_restarts": "0"})
	}
	for _, h := range hosts {
		h.restarted(t, id)
	}

	nc, err := nats.Connect(hb.ClientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// The hub operator sources the routes once each host has stored one.
	// Hosts answer the hub's requests on $JSC.R only.
	onc, err := nats.Connect(hb.ClientURL(), nats.UserInfo("ops", "ops-pw"), nats.CustomInboxPrefix("$JSC.R.ops"))
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
	notifier.Env = append(os.Environ(), "HMD_NATS_URL="+hb.ClientURL(), "HMD_NATS_USER=ops", "HMD_NATS_PASSWORD=ops-pw",
		"HMD_EVENTS_STREAM=HMD_FLEET", "HMD_NOTIFY_LEVEL=debug", "HMD_NOTIFY_GROUP_WAIT=1s", "HMD_HOST_NAME=hub")
	nerr := waitlog.Start(t, "notifier", notifier)

	testkit.Eventually(t, wait, "the central notifier to deliver every host's restart", func() (string, bool) {
		a, b := recs["host-a"].Joined(), recs["host-b"].Joined()
		return fmt.Sprintf("host-a got %q, host-b got %q\n%s", a, b, nerr.String()),
			strings.Contains(a, ": restarted") && strings.Contains(b, ": restarted")
	})
	// A second restart on each host is the marker: once its message is
	// there, a second delivery of the first restart would be there too.
	// (The same container, so the target's set of containers stays as it
	// is.)
	for _, h := range hosts {
		h.fake.Emit(id, events.ActionHealthStatusUnhealthy, nil)
	}
	for name, r := range recs {
		// The second restart itself, not any second message: a duplicate
		// of the first must not end the wait.
		if _, ok := r.Texts.WaitNth(wait, 1, func(s string) bool {
			return strings.Contains(s, container+": restarted") && strings.Contains(s, ", restart 2 in this frame")
		}); !ok {
			t.Fatalf("%s's target never got the second restart: %q\n%s", name, r.All(), nerr.String())
		}
	}
	for name, r := range recs {
		all := r.Joined()
		other := "host-b"
		if name == "host-b" {
			other = "host-a"
		}
		if n := strings.Count(all, container+": restarted"); n != 2 || !strings.Contains(all, "["+name+"]") || strings.Contains(all, "["+other+"]") {
			t.Errorf("%s's target got %d restart(s), want its own host's two only:\n%s", name, n, all)
		}
	}

	// The hub's routes bucket holds tokens: a hub reader cannot read it.
	rerrs := make(chan error, 8)
	rc, err := nats.Connect(hb.ClientURL(), nats.UserInfo("reader", "reader-pw"),
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
