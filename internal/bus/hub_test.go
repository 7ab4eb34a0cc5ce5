package bus

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/test/testkit"
	"github.com/healmydocker/healmydocker/test/testkit/natstest"
)

// Three leaf nodes in their own domains join a hub: the fleet stream holds
// each host's events once, old and live, and no host stores another's.
func TestFleetSourcesEachHostOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hub := natstest.StartHub(t, natstest.HubOptions{})
	hosts := []string{"ha", "hb", "hc"}
	buses := map[string]*Bus{}
	for _, d := range hosts {
		b, err := Open(ctx, Options{DataDir: t.TempDir(), Domain: d, HubURL: hub.LeafURL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		buses[d] = b
		if _, err := b.JetStream().Publish(ctx, "hmd."+d+".web.x.old", []byte("old-"+d), jetstream.WithMsgID("old-"+d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range hosts {
		testkit.Until(t, 10*time.Second, d+" to link to the hub", buses[d].HubLinked)
	}
	// The hub operator owns the fleet stream and its sources.
	opc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer opc.Close()
	ojs, _ := jetstream.New(opc)
	var sources []*jetstream.StreamSource
	for _, d := range hosts {
		sources = append(sources, &jetstream.StreamSource{Name: EventsStream, External: &jetstream.ExternalStream{APIPrefix: "$JS." + d + ".API", DeliverPrefix: FleetDeliverPrefix + "." + d}})
	}
	if _, err := ojs.CreateStream(ctx, jetstream.StreamConfig{Name: FleetStream, Storage: jetstream.FileStorage, Sources: sources}); err != nil {
		t.Fatal(err)
	}
	for _, d := range hosts {
		testkit.Until(t, 20*time.Second, d+" to see the hub's source", func() bool { return buses[d].hubSourcesUs(d) })
	}
	for _, d := range hosts {
		if _, err := buses[d].JetStream().Publish(ctx, "hmd."+d+".web.x.live", []byte("live-"+d), jetstream.WithMsgID("live-"+d)); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	want := len(hosts) * 2
	var got map[string]int
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = map[string]int{}
		if s, err := js.Stream(ctx, FleetStream); err == nil {
			for i := uint64(1); i <= s.CachedInfo().State.LastSeq; i++ {
				if m, err := s.GetMsg(ctx, i); err == nil {
					got[string(m.Data)]++
				}
			}
		}
		if len(got) == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, d := range hosts {
		for _, k := range []string{"old-", "live-"} {
			if n := got[k+d]; n != 1 {
				t.Errorf("%s%s is in the fleet stream %d times, want once", k, d, n)
			}
		}
		s, err := buses[d].JetStream().Stream(ctx, EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 2 {
			t.Errorf("%s's own stream holds %d events, want its 2: another host's came in", d, n)
		}
	}
	if len(got) != want {
		t.Errorf("fleet stream: %v", got)
	}
}
