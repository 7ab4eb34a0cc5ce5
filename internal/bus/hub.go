package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Fleet defaults: the hub's JetStream domain and the stream there that
// sources every host's events.
const (
	DefaultHubDomain = "hub"
	FleetStream      = "HMD_FLEET"
)

// leafRemote is the leaf-node remote for the hub at rawURL, with the
// credentials put into the URL, where the server reads them.
func leafRemote(rawURL, user, password string) (*server.RemoteLeafOpts, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "nats-leaf") {
		return nil, fmt.Errorf("hub url %s: expected nats://host:port of the hub's leaf-node listener", redactURL(rawURL))
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	// Other hosts' events must not come in: this host's stream takes
	// hmd.>, and would store them as its own. Ours still go out, so live
	// subscribers on the hub see them.
	return &server.RemoteLeafOpts{URLs: []*url.URL{u}, TLS: u.Scheme == "tls", DenyImports: []string{"hmd.>"}}, nil
}

// HubLinked reports whether the leaf-node link to the hub is up.
func (b *Bus) HubLinked() bool { return b.srv.NumLeafNodes() > 0 }

// FleetDeliverPrefix is where a host delivers its sourced events on the
// hub: the hub operator's source for host h sets deliver to
// FleetDeliverPrefix+"."+h, and h's leaf user may publish only there and
// on its own hmd.<h>.> (see README, "Fleet").
const FleetDeliverPrefix = "hmd_deliver"

// FleetRoutesDeliver follows a host's delivery prefix for the hub's source
// of its routes bucket: hmd_deliver.<host>.routes (see README, "Fleet").
const FleetRoutesDeliver = "routes"

// FleetSource is the source the hub operator adds to the fleet stream for
// the host of domain d.
func FleetSource(domain string) string {
	return fmt.Sprintf(`{"name":%q,"external":{"api":"$JS.%s.API","deliver":"%s.%s"}}`, EventsStream, domain, FleetDeliverPrefix, domain)
}

// JoinFleet watches the hub link and whether the hub sources this host's
// events stream, and says what is missing. It changes nothing on the hub:
// the hub operator owns the fleet stream and its sources, and a host's
// leaf credentials may not touch the hub's JetStream. Whether the hub
// sources us is seen here, on our own stream: its source is a consumer of
// ours that delivers under FleetDeliverPrefix. It runs until ctx ends.
func (b *Bus) JoinFleet(ctx context.Context, hubDomain, stream, domain string, log *slog.Logger) error {
	const grace = 15 * time.Second
	linked, sourced, told := false, false, false
	var upSince time.Time
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		up := b.HubLinked()
		if up != linked {
			linked = up
			if up {
				upSince = time.Now()
				log.Info("hub link up", "domain", domain)
			} else {
				log.Warn("hub link down; healing goes on here, and the hub catches up from the stream when the link is back", "domain", domain)
			}
		}
		if up {
			now := b.hubSourcesUs(domain)
			switch {
			case now && !sourced:
				log.Info("this host's events are sourced by the hub", "stream", stream, "domain", domain)
				told = false
			case !now && !told && time.Since(upSince) > grace:
				log.Warn("the hub does not source this host's events: the hub operator must add this host to the fleet stream's sources (see README, Fleet); events wait in this host's stream until then",
					"stream", stream, "hub_domain", hubDomain, "source", FleetSource(domain))
				told = true
			}
			sourced = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// hubSourcesUs reports whether the hub listens for our sourced events:
// the hub's source consumer is hidden from consumer lists, but its
// delivery subject is the hub's interest on the leaf link.
func (b *Bus) hubSourcesUs(domain string) bool {
	lz, err := b.srv.Leafz(&server.LeafzOptions{Subscriptions: true})
	if err != nil {
		return false
	}
	pre := FleetDeliverPrefix + "." + domain + "."
	for _, l := range lz.Leafs {
		for _, sub := range l.Subs {
			if strings.HasPrefix(sub, pre) && !strings.HasPrefix(sub, pre+FleetRoutesDeliver+".") {
				return true
			}
		}
	}
	return false
}
