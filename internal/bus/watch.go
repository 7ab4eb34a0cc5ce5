package bus

import (
	"context"
	"time"

	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nats.go"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Trigger subscribes to live events of the given kinds from host and sends
// on the returned channel, without blocking, when one arrives. A consumer
// that only needs to know "something happened" (the cleaner) uses it; one
// that must see every event uses a durable JetStream consumer instead.
func Trigger(nc *nats.Conn, host string, kinds []events.Kind, log *slog.Logger) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	var subs []*nats.Subscription
	stop := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, k := range kinds {
		subj := events.SubjectRoot + "." + events.SanitizeToken(host) + ".*." + k.Category() + "." + k.Action()
		s, err := nc.Subscribe(subj, func(*nats.Msg) {
			select {
			case ch <- struct{}{}:
			default:
			}
		})
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	log.Debug("watching the bus", "host", host, "kinds", kinds)
	return ch, stop, nil
}

// Connect dials a healer's NATS listener for a split component, with a
// user and password or a token, reconnecting for ever once connected.
func Connect(url, user, password, token, name string, tls TLS, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			// Close calls it too: a binary that stops is not reconnecting.
			if nc.IsClosed() {
				return
			}
			log.Warn("nats connection lost; reconnecting", "url", redactURL(url), "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats connection back", "url", redactURL(url)) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A reader may not delete consumers; the server drops the
			// ephemeral ones it leaves behind by itself.
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "CONSUMER.DELETE") {
				log.Debug("nats: consumer left for the server to drop", "err", err)
				return
			}
			log.Warn("nats error", "url", redactURL(url), "err", err)
		}),
	}
	opts = append(opts, clientTLS(tls)...)
	switch {
	case token != "":
		opts = append(opts, nats.Token(token))
	case user != "":
		opts = append(opts, nats.UserInfo(user, password))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redactURL(url), withoutURL(err))
	}
	return nc, nil
}

// Follow calls f with each event matching filter, from since on and then
// live, in stream order, until ctx ends. It reads through an ordered
// consumer, which the server recreates after any gap.
func Follow(ctx context.Context, js jetstream.JetStream, stream, filter string, since time.Time, f func(jetstream.Msg)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	c, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("follow %s: %w", filter, err)
	}
	cc, err := c.Consume(f)
	if err != nil {
		return fmt.Errorf("follow %s: %w", filter, err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}

// Live hands f the JSON of each event published from now on, until the
// returned cancel; for the status page's stream.
func Live(nc *nats.Conn, f func([]byte)) (func(), error) {
	sub, err := nc.Subscribe(events.SubjectRoot+".>", func(m *nats.Msg) { f(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
