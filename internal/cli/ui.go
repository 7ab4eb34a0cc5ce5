package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/httpapi"
	"github.com/healmydocker/healmydocker/internal/program"
	"github.com/healmydocker/healmydocker/internal/status"
)

// FleetStatus is the status JSON of `healer ui`: what the events say of
// every host's containers. No Docker is asked: the hub has none.
type FleetStatus struct {
	Fleet      bool               `json:"fleet"`
	Host       string             `json:"host"`
	Version    string             `json:"version"`
	Hosts      []string           `json:"hosts"`
	Containers []status.Container `json:"containers"`
	Events     []events.Event     `json:"events"`
}

// ServeUI serves the status page, JSON and live events of a stream read
// through nats_url: the hub's fleet stream with hub, for every host.
func ServeUI(ctx context.Context, cfg config.Config, hub bool, version string, log *slog.Logger) error {
	if cfg.NATSURL == "" {
		return errors.New("nats_url is needed: the hub's (or a healer's listener) client URL")
	}
	if cfg.HTTPPort == 0 {
		return errors.New("http_port is 0: the page needs a port")
	}
	stream := cfg.EventsStream
	if hub {
		stream = cfg.HubStream
	}
	nc, js, err := connect(cfg, "healer-ui", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	view := status.NewView()
	statusOf := func(_ context.Context, limit int) (any, error) {
		snap := view.Snapshot(time.Now(), limit)
		seen := map[string]bool{}
		st := FleetStatus{Fleet: true, Host: stream, Version: version, Hosts: []string{}, Containers: snap.Containers, Events: snap.Events}
		for _, c := range snap.Containers {
			if !seen[c.Host] {
				seen[c.Host] = true
				st.Hosts = append(st.Hosts, c.Host)
			}
		}
		sort.Strings(st.Hosts)
		return st, nil
	}
	srv := httpapi.New(httpapi.Options{
		Addr: net.JoinHostPort(cfg.HTTPAddress, fmt.Sprint(cfg.HTTPPort)), Prefix: cfg.HTTPPrefix, Token: cfg.HTTPToken.Reveal(), MaxStreams: cfg.HTTPMaxStreams,
		Ready: func() error {
			if !nc.IsConnected() {
				return fmt.Errorf("nats %s", nc.Status())
			}
			return nil
		},
		Status:    statusOf,
		Subscribe: func(f func([]byte)) (func(), error) { return bus.Live(nc, f) },
		Log:       log,
	})
	var g program.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
	g.Add(func() error {
		return bus.Follow(gctx, js, stream, events.SubjectRoot+".>", time.Now().Add(-status.Window), func(m jetstream.Msg) {
			if e, err := events.Unmarshal(m.Data()); err == nil {
				view.Apply(e)
			}
		})
	}, func(error) { cancel() })
	g.Add(func() error { return srv.Run(gctx) }, func(error) { cancel() })
	log.Info("serving the status page of a stream", "stream", stream, "nats", nc.ConnectedUrlRedacted())
	return g.Run()
}
