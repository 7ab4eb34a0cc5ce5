// Package natstest starts a real nats-server hub for the fleet tests and
// the benchmarks, and reads a JetStream stream back as events.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// HubOptions say what a hub is beyond its loopback ports.
type HubOptions struct {
	// Domain is the hub's JetStream domain; "hub" when empty.
	Domain string
	// StoreDir holds the hub's JetStream store.
	StoreDir string
	// Users, when set, are the only clients and leaf nodes let in.
	Users []*server.User
}

// Hub is a real nats-server: clients on one loopback port, leaf nodes on
// another, JetStream in its own domain. It can be stopped and started
// again on the same store and ports.
type Hub struct {
	ClientPort, LeafPort int
	opts                 HubOptions
	srv                  *server.Server
}

// NewHub picks the hub's ports and starts it.
func NewHub(o HubOptions) (*Hub, error) {
	if o.Domain == "" {
		o.Domain = "hub"
	}
	h := &Hub{opts: o}
	var err error
	if h.ClientPort, err = testkit.PickPort(); err != nil {
		return nil, err
	}
	if h.LeafPort, err = testkit.PickPort(); err != nil {
		return nil, err
	}
	return h, h.Start()
}

// StartHub is NewHub for a test: it fails t if the hub does not start and
// stops the hub when t ends.
func StartHub(t testing.TB, o HubOptions) *Hub {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	h, err := NewHub(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Start starts a stopped hub on its store and ports.
func (h *Hub) Start() error {
	opts := &server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: h.ClientPort, NoSigs: true,
		JetStream: true, JetStreamDomain: h.opts.Domain, StoreDir: h.opts.StoreDir,
		// Leaf users are in the server's users, not in the leaf listener's
		// own list: only there do their permissions apply.
		Users:    h.opts.Users,
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: h.LeafPort, NoAdvertise: true},
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("hub not ready within 10s")
	}
	h.srv = srv
	return nil
}

// Stop shuts the hub down and waits until it is.
func (h *Hub) Stop() {
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

// ClientURL is where clients connect.
func (h *Hub) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.ClientPort) }

// LeafURL is where leaf nodes connect.
func (h *Hub) LeafURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.LeafPort) }

// ReadStream reads every message the stream holds now, in order, as
// events. A stream that is not there reads as jetstream.ErrStreamNotFound.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string) ([]events.Event, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	n := s.CachedInfo().State.Msgs
	if n == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	out := make([]events.Event, 0, n)
	for range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, fmt.Errorf("read stream %s: %w", stream, err)
		}
		e, err := events.Unmarshal(m.Data())
		if err != nil {
			return out, fmt.Errorf("undecodable event in stream %s: %w", stream, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadStreamAt is ReadStream for the server at url, connected with opts
// for the read only.
func ReadStreamAt(ctx context.Context, url, stream string, opts ...nats.Option) ([]events.Event, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream at %s: %w", url, err)
	}
	return ReadStream(ctx, js, stream)
}
