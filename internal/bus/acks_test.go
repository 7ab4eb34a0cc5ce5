package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// future is a settled (or, with neither, pending) publish.
type future struct {
	ok  chan *jetstream.PubAck
	err chan error
}

func (f future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f future) Err() <-chan error            { return f.err }
func (f future) Msg() *nats.Msg               { return &nats.Msg{} }

func acked(seq uint64) jetstream.PubAckFuture {
	f := future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	f.ok <- &jetstream.PubAck{Sequence: seq}
	return f
}

func failed(err error) jetstream.PubAckFuture {
	f := future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	f.err <- err
	return f
}

func pending() jetstream.PubAckFuture {
	return future{ok: make(chan *jetstream.PubAck), err: make(chan error)}
}

// awaitAcks's contract, the one the three loops it replaced kept: nil is
// skipped, the acked prefix is handed over in order, the first failure
// stops the wait with its index and the store's error under what(i), and
// an ended ctx gives its own error, bare.
func TestAwaitAcks(t *testing.T) {
	t.Parallel()
	full := errors.New("maximum bytes exceeded")
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	what := func(i int) string { return fmt.Sprintf("event %d", i) }
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		futures []jetstream.PubAckFuture
		n       int
		err     string
		is      error
		stored  []uint64
	}{
		{"all stored", context.Background(), []jetstream.PubAckFuture{acked(1), nil, acked(2)}, 3, "", nil, []uint64{1, 2}},
		{"none", context.Background(), nil, 0, "", nil, nil},
		{"stops at the first failure", context.Background(), []jetstream.PubAckFuture{acked(1), nil, failed(full), acked(3)}, 2, "event 2: maximum bytes exceeded", full, []uint64{1}},
		{"ctx ended while waiting", ended, []jetstream.PubAckFuture{nil, pending(), acked(2)}, 1, "context canceled", context.Canceled, nil},
	} {
		var stored []uint64
		n, err := awaitAcks(tc.ctx, tc.futures, what, func(_ int, ack *jetstream.PubAck) { stored = append(stored, ack.Sequence) })
		if n != tc.n || (err == nil) != (tc.err == "") || (err != nil && (err.Error() != tc.err || !errors.Is(err, tc.is))) || !reflect.DeepEqual(stored, tc.stored) {
			t.Errorf("%s: %d, %v, stored %v; want %d, %q, %v", tc.name, n, err, stored, tc.n, tc.err, tc.stored)
		}
	}
}
