package notify

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
)

// send is the sender end of the pipeline: it delivers the messages for
// evs (one, unless they are too long for one), in order, retrying what may
// get better. It returns false only when ctx ended first.
func (r *Runner) send(ctx context.Context, evs []events.Event, msgs []jetstream.Msg) bool {
	texts, err := split(r.Template, evs, EscapeFor(r.Target), maxMessage)
	if err != nil {
		r.Log.Error("notifier: cannot render; sending the event kinds instead", "err", err)
	}
	if len(texts) > 1 {
		r.Log.Info("notifier: the group is too long for one message; sending it in parts", "target", r.Target.Name(), "events", len(evs), "messages", len(texts))
	}
	for _, text := range texts {
		if !r.sendText(ctx, text, len(evs), msgs) {
			return false
		}
	}
	return true
}

// sendText delivers one message, retrying what may get better; false only
// when ctx ended first.
func (r *Runner) sendText(ctx context.Context, text string, nEvents int, msgs []jetstream.Msg) bool {
	attempts, lastErr, refused := 0, "", false
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempts++
		// A send under way finishes even when the notifier stops: cut off,
		// the target may have taken the message without our knowing, and
		// the next run would send it again.
		result, err := judge(r.Target.Notify(context.WithoutCancel(ctx), text))
		r.sent(result)
		refused = result == resultRefused
		if err != nil && ctx.Err() != nil {
			// Stopping: the events go back to the stream, refused or not.
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(retryPolicy(r.MaxBackoff)), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		if err.Error() != lastErr {
			r.Log.Warn("notifier: delivery failed; retrying", "target", r.Target.Name(), "attempt", attempts, "err", err, "retry_in", next)
			lastErr = err.Error()
		}
		inProgress(msgs)
	}))
	switch {
	case err == nil:
		if lastErr != "" {
			r.Log.Info("notifier: delivered after retries", "target", r.Target.Name(), "attempts", attempts)
		}
		return true
	case ctx.Err() != nil:
		return false
	case refused:
		r.Log.Error("notifier: target refused the message; not retrying", "target", r.Target.Name(), "err", err, "events", nEvents)
		r.Publisher.Publish(events.New(events.NotifyFailed, uuid.NewString(), time.Now(), "", events.Data{
			Host: r.Host, Error: err.Error(), Reason: r.Target.Name(),
		}))
		return true
	default:
		// Not reached: only a refusal or the end of ctx stops the retries.
		r.Log.Error("notifier: delivery stopped", "target", r.Target.Name(), "err", err)
		return true
	}
}
