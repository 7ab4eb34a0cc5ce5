package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
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

// JoinFleet keeps this host's events stream among the sources of the
// hub's fleet stream, creating that stream if the hub has none, whenever
// the link is up. Sourcing, not forwarding: the hub pulls from where it
// stopped, so a link that was down loses nothing and copies nothing twice.
// It runs until ctx ends.
func (b *Bus) JoinFleet(ctx context.Context, hubDomain, stream, domain string, log *slog.Logger) error {
	js, err := jetstream.NewWithDomain(b.nc, hubDomain)
	if err != nil {
		return fmt.Errorf("hub jetstream: %w", err)
	}
	src := &jetstream.StreamSource{Name: EventsStream, External: &jetstream.ExternalStream{APIPrefix: "$JS." + domain + ".API"}}
	joined, linked := false, false
	lastErr := ""
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		up := b.HubLinked()
		if up != linked {
			linked = up
			if up {
				log.Info("hub link up", "domain", domain)
			} else {
				log.Warn("hub link down; healing goes on here, and the hub catches up from the stream when the link is back", "domain", domain)
			}
			joined = joined && up
		}
		if up && !joined {
			if err := ensureSource(ctx, js, stream, src); err != nil {
				if err.Error() != lastErr {
					log.Warn("cannot add this host to the hub's fleet stream; trying again", "stream", stream, "err", err)
					lastErr = err.Error()
				}
			} else {
				joined, lastErr = true, ""
				log.Info("this host's events are sourced by the hub", "stream", stream, "domain", domain)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ensureSource adds src to the fleet stream. Hosts join at the same time:
// an update can lose to another's, so it reads back until src is there.
func ensureSource(ctx context.Context, js jetstream.JetStream, stream string, src *jetstream.StreamSource) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		s, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, jetstream.StreamConfig{
				Name:        stream,
				Description: "HealMyDocker fleet: the events of every host, sourced from their streams",
				Storage:     jetstream.FileStorage,
				Sources:     []*jetstream.StreamSource{src},
			})
			if err == nil || !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		cfg := s.CachedInfo().Config
		if slices.ContainsFunc(cfg.Sources, func(x *jetstream.StreamSource) bool { return sameSource(x, src) }) {
			return nil
		}
		if attempt > 20 {
			return errors.New("the fleet stream keeps changing under us")
		}
		cfg.Sources = append(cfg.Sources, src)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return err
		}
		// Read back: another host's update may have replaced ours.
		time.Sleep(time.Duration(50+attempt*20) * time.Millisecond)
	}
}

func sameSource(a, b *jetstream.StreamSource) bool {
	return a.Name == b.Name && a.External != nil && b.External != nil && a.External.APIPrefix == b.External.APIPrefix
}
