package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// awaitAcks waits, in order, for the acks of pipelined publishes (a nil
// future was never published and is skipped), handing each to stored if
// it is not nil. It stops at the first publish not stored and returns its
// index and why: the store's error wrapped as "<what(i)>: <err>", or ctx's
// own error if ctx ended first. With all stored it returns len(futures).
//
// It stops there because the event queues keep their order: what follows
// a failure is retried with it, not counted as stored. A caller that keeps
// no order (the state writer) calls it again past the failure.
func awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture, what func(i int) string, stored func(i int, ack *jetstream.PubAck)) (int, error) {
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if stored != nil {
				stored(i, ack)
			}
		case err := <-f.Err():
			return i, fmt.Errorf("%s: %w", what(i), err)
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(futures), nil
}
