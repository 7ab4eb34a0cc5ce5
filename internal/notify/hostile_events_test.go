package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
)

// What a compromised host (or any publisher on the stream) can put there:
// messages that are not events, a kind this version does not know, a huge
// field, container names with subject wildcards, a zero time, another
// host's name. None panics the notifier; what is not an event is logged
// with its subject and skipped; the rest is delivered; every message is
// acked.
func TestNotifierSkipsHostileEventsAndGoesOn(t *testing.T) {
	g := newRoutesRig(t, Settings{})
	js := g.b.JetStream()
	raw := func(subject string, data []byte) {
		t.Helper()
		if _, err := js.Publish(g.ctx, subject, data); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
	raw("hmd.host-a.web.outcome.restart_succeeded", []byte("not json \xff"))
	future := events.New(events.RestartSucceeded, "future-1", time.Now(), "web", events.Data{Host: "host-a", Container: "web"})
	future.Type = "io.healmydocker." + events.SchemaVersion + ".outcome.teleported"
	b, _ := json.Marshal(future)
	raw("hmd.host-a.web.outcome.teleported", b)
	huge := events.New(events.RestartFailed, "huge-1", time.Now(), "big", events.Data{Host: "host-a", Container: "big", Error: strings.Repeat("x", 512<<10)})
	b, _ = json.Marshal(huge)
	raw(huge.NATSSubject(), b)
	for i, name := range []string{"*", ">", "a.b c", "/x.>"} {
		e := events.New(events.RestartSucceeded, "wild-"+string(rune('a'+i)), time.Now(), name, events.Data{Host: "host-a", Container: name})
		b, _ = json.Marshal(e)
		raw(e.NATSSubject(), b)
	}
	zero := events.New(events.RestartSucceeded, "zero-1", time.Time{}, "zero", events.Data{Host: "host-a", Container: "zero"})
	b, _ = json.Marshal(zero)
	raw(zero.NATSSubject(), b)
	// Published on host-a's subjects, claiming host-b.
	claim := events.New(events.RestartSucceeded, "claim-1", time.Now(), "claimed", events.Data{Host: "host-b", Container: "claimed"})
	b, _ = json.Marshal(claim)
	raw("hmd.host-a.claimed.outcome.restart_succeeded", b)
	g.restart("host-a", "marker", "cid-m")

	if _, ok := g.def.WaitText(15*time.Second, "marker: restarted"); !ok {
		t.Fatal("the events after the hostile ones were not delivered")
	}
	all := g.def.Joined()
	for _, want := range []string{"zero: restarted", "claimed: restarted", "big: restart failed"} {
		if !strings.Contains(all, want) {
			t.Errorf("%q not delivered", want)
		}
	}
	if n := strings.Count(all, ": restarted") - strings.Count(all, "marker: restarted") - strings.Count(all, "zero: restarted") - strings.Count(all, "claimed: restarted"); n != 4 {
		t.Errorf("%d of the 4 wildcard names delivered:\n%.2000s", n, all)
	}
	log := g.log.String()
	for _, subject := range []string{"hmd.host-a.web.outcome.restart_succeeded", "hmd.host-a.web.outcome.teleported"} {
		if !strings.Contains(log, "skipping undecodable event") || !strings.Contains(log, subject) {
			t.Errorf("the message on %s is not logged as skipped", subject)
		}
	}
	if n := g.pubs.count(events.HealerPanic); n != 0 {
		t.Errorf("%d panics", n)
	}
	c, err := js.Consumer(g.ctx, bus.EventsStream, ConsumerName(g.def.URL+"/hooks/default"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := c.Info(g.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages left unacked: %+v", info)
		}
	}
}
