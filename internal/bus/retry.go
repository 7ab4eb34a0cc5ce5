package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// storeBackoff is the wait between attempts to store: 50 ms doubling to
// 5 s, without jitter (one writer per store, nobody to spread from).
func storeBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval: 50 * time.Millisecond,
		Multiplier:      2,
		MaxInterval:     5 * time.Second,
	}
}

// retry runs op with bo until it succeeds, ctx ends, or op returns
// backoff.Permanent. It returns op's last error, or ctx's.
func retry(ctx context.Context, bo backoff.BackOff, op func() error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, op() }, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0))
	return err
}

// errKicked cuts a wait short: the store is back.
var errKicked = errors.New("the store is back")

// retryKicked runs op with bo until it succeeds, ctx ends, or op returns
// backoff.Permanent; a receive on kick cuts a wait short and starts the
// backoff over. It returns op's last error, or ctx's.
func retryKicked(ctx context.Context, kick <-chan struct{}, bo backoff.BackOff, op func() error) error {
	attempt := func() (struct{}, error) { return struct{}{}, op() }
	for {
		wctx, cancel := context.WithCancelCause(ctx)
		stop := make(chan struct{})
		// Kicks are watched from the first failure on: a first attempt
		// that works, the common case, costs no goroutine.
		var watching sync.Once
		watch := func(error, time.Duration) {
			watching.Do(func() {
				go func() {
					select {
					case <-kick:
						cancel(errKicked)
					case <-stop:
					}
				}()
			})
		}
		_, err := backoff.Retry(wctx, attempt, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithNotify(watch))
		close(stop)
		cancel(nil)
		if !errors.Is(err, errKicked) || ctx.Err() != nil {
			return err
		}
	}
}
