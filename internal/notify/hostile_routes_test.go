package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/waitlog"
)

// routesRig is a notifier Service watching a real routes bucket on an
// embedded bus, with a default target: the bucket is written as a hub's
// is (<host>.<id> keys) or a host's, by whoever the test plays.
type routesRig struct {
	ctx  context.Context
	b    *bus.Bus
	kv   jetstream.KeyValue
	pub  *bus.Publisher
	def  *testkit.Slack
	log  *waitlog.Buffer
	pubs *reportLog
}

func newRoutesRig(t *testing.T, s Settings) *routesRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bus.Open(ctx, bus.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	kv, err := bus.OpenRoutesBucket(ctx, b.JetStream())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &routesRig{ctx: ctx, b: b, kv: kv, def: testkit.NewSlack(t), log: &waitlog.Buffer{}, pubs: &reportLog{}}
	g.pub = bus.NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); _ = g.pub.Run(ctx, time.Second) }()
	s.URLs = g.def.URL + "/hooks/default"
	s.Level = "debug"
	s.GroupWait = 200 * time.Millisecond
	s.MaxBackoff = 100 * time.Millisecond
	log := slog.New(slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sv, err := NewService(s, b.JetStream(), bus.EventsStream, "hub", g.pubs, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sv.RunWatching(ctx, kv) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-pubDone
		_ = b.Close()
		if t.Failed() {
			t.Logf("notifier log:\n%s", g.log.String())
		}
	})
	g.waitConsumer(t, ConsumerName(s.URLs))
	return g
}

func (g *routesRig) put(t *testing.T, key string, value []byte) {
	t.Helper()
	if _, err := g.kv.Put(g.ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// route is a route value as a healer stores it: url, named by container
// (with id cid) now.
func route(url, container, cid string) []byte {
	now := time.Now().Unix()
	v := bus.RouteValue{URL: url, Containers: map[string]int64{container: now}, IDs: map[string]bus.RouteID{cid: {Name: container, Seen: now}}}
	b, _ := json.Marshal(v)
	return b
}

func (g *routesRig) waitConsumer(t *testing.T, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := g.b.JetStream().Consumer(g.ctx, bus.EventsStream, name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s not made", name)
		}
	}
}

func (g *routesRig) restart(host, container, cid string) {
	g.pub.Publish(events.New(events.RestartSucceeded, "ok-"+host+"-"+container+"-"+cid, time.Now(), container,
		events.Data{Host: host, Container: container, ContainerID: cid}))
}

// quiet is how long a target that was to get something has had it.
const quiet = 3 * time.Second

// On a hub, a host's route that names no container (the older form, a
// bare URL, or a value without its containers) under the id of another
// host's target must not read the other hosts' events: a compromised host
// would have another host's containers' events, and their log tails, sent
// to a URL of its choosing. Such a route under its URL's id reads its own
// host's events only (else the target would hear host-b's twice); under
// another URL's, it is not followed.
func TestHubRouteWithoutContainersGetsNoOtherHostsEvents(t *testing.T) {
	g := newRoutesRig(t, Settings{})
	b, evil := testkit.NewSlack(t), testkit.NewSlack(t)
	urlB := b.URL + "/hooks/b"
	id := events.NotifyTargetID(urlB)
	g.put(t, "host-b."+id, route(urlB, "web", "cid-b"))
	// host-a stores the same URL bare; host-c a value with no containers
	// and its own URL, under host-b's target id.
	g.put(t, "host-a."+id, []byte(urlB))
	g.put(t, "host-c."+id, []byte(`{"url":"`+evil.URL+`/steal-c"}`))
	for _, h := range []string{"host-a", "host-b"} {
		g.waitConsumer(t, h+"_"+id)
	}
	g.restart("host-b", "web", "cid-b")
	if _, ok := b.WaitText(10*time.Second, "web: restarted"); !ok {
		t.Fatal("host-b's own target did not get its container's restart")
	}
	time.Sleep(quiet)
	if got := evil.All(); len(got) > 0 {
		t.Errorf("host-b's container's events went to another host's URL: %q", got)
	}
	if got := b.All(); len(got) != 1 {
		t.Errorf("host-b's target got %q, want its restart once: another host's route read it", got)
	}
}

// notify_label_targets holds for the routes a notifier reads, not only for
// the labels the healer reads: a route stored before the healer restarted
// with it tightened stays a day in the bucket, and a hub's notifier reads
// the routes every host stored, whatever that host allows. A route it does
// not allow is not followed: its containers' events go to the default
// targets.
func TestNotifierFollowsOnlyTheTargetsItsPolicyAllows(t *testing.T) {
	for _, c := range []struct{ name, allow, key string }{
		{"off, a route stored before the healer restarted", "off", ""},
		{"a host list, a hub reading a host's route", "chat.example", "host-a."},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newRoutesRig(t, Settings{LabelTargets: c.allow})
			evil := testkit.NewSlack(t)
			url := evil.URL + "/steal"
			id := events.NotifyTargetID(url)
			g.put(t, c.key+id, route(url, "web", "cid-web"))
			host := strings.TrimSuffix(c.key, ".")
			if host == "" {
				host = "h"
			}
			g.restart(host, "web", "cid-web")
			if _, ok := g.def.WaitText(10*time.Second, "web: restarted"); !ok {
				t.Error("the default target did not get the restart of a container whose own target is not allowed")
			}
			time.Sleep(quiet)
			if got := evil.All(); len(got) > 0 {
				t.Errorf("a target that notify_label_targets=%s does not allow got %q", c.allow, got)
			}
			if !strings.Contains(g.log.String(), "notify_label_targets") {
				t.Error("the refused route is not logged")
			}
		})
	}
}

// A route the notifier cannot follow (its URL makes no target, or its key
// is not its URL's id, as no healer stores it: a key with a dot names no
// consumer) is said once, and its containers' events go to the default
// targets: before, they went nowhere, or its runner tried for ever to make
// a consumer that cannot be.
func TestNotifierSendsTheEventsOfARouteItCannotFollowToTheDefaultTargets(t *testing.T) {
	for _, c := range []struct {
		name, host string
		key        func(url string) string
		url        func(evil string) string
		said       string
	}{
		{"a URL Shoutrrr does not know", "h", events.NotifyTargetID, func(string) string { return "telegram://host" }, "not a service URL"},
		{"a hub key with a dot in its id", "host-a", func(string) string { return "host-a.x.y" }, func(evil string) string { return evil + "/steal" }, "is not its URL's id"},
		{"a key that is not its URL's id", "h", func(string) string { return "notify-000000000000" }, func(evil string) string { return evil + "/steal" }, "is not its URL's id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newRoutesRig(t, Settings{})
			evil := testkit.NewSlack(t)
			url := c.url(evil.URL)
			g.put(t, c.key(url), route(url, "web", "cid-web"))
			g.restart(c.host, "web", "cid-web")
			if _, ok := g.def.WaitText(10*time.Second, "web: restarted"); !ok {
				t.Error("the default target did not get the restart of a container whose own target cannot be followed")
			}
			time.Sleep(quiet)
			if got := evil.All(); len(got) > 0 {
				t.Errorf("a route that cannot be followed was: %q", got)
			}
			log := g.log.String()
			if !strings.Contains(log, c.said) {
				t.Errorf("the route is not said to be unfollowed with %q", c.said)
			}
			if strings.Contains(log, "cannot make the target's consumer") {
				t.Error("a consumer that cannot be made is tried again")
			}
		})
	}
}
