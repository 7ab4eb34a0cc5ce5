package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

func TestRetryKicked(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	slow := func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }

	t.Run("a kick cuts the wait short", func(t *testing.T) {
		t.Parallel()
		kick := make(chan struct{}, 1)
		calls := 0
		done := make(chan error, 1)
		go func() {
			done <- retryKicked(context.Background(), kick, slow(), func() error {
				calls++
				if calls == 1 {
					return boom
				}
				return nil
			})
		}()
		kick <- struct{}{}
		select {
		case err := <-done:
			if err != nil || calls != 2 {
				t.Errorf("err %v after %d calls, want nil after 2", err, calls)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the kick did not cut the hour's wait short")
		}
	})

	t.Run("permanent is not retried", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := retryKicked(context.Background(), nil, slow(), func() error { calls++; return backoff.Permanent(boom) })
		if !errors.Is(err, boom) || calls != 1 {
			t.Errorf("err %v after %d calls, want boom after 1", err, calls)
		}
	})

	t.Run("the end of ctx ends the wait", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := retryKicked(ctx, make(chan struct{}), slow(), func() error { return boom })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want the deadline", err)
		}
	})

	t.Run("retried until it works", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := retry(context.Background(), backoff.NewConstantBackOff(time.Millisecond), func() error {
			if calls++; calls < 3 {
				return boom
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Errorf("err %v after %d calls", err, calls)
		}
	})
}
