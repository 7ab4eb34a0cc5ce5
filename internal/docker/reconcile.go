package docker

import (
	"cmp"
	"context"
	"sync"
	"time"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// reconcile reports containers that are unhealthy now: no event will say so
// again, whether they turned unhealthy before the healer started or while it
// was disconnected. After a reconnect (lastSeen, the daemon time of the
// newest event seen, is set) it also reports the containers that exited
// between lastSeen and subscribed: the daemon may have lost their die
// events (it restarted) or sends them again only as replays, which the
// healer does not act on.
func (w *Watcher) reconcile(ctx context.Context, lastSeen, subscribed int64) error {
	if err := w.reconcileIf(ctx, false); err != nil {
		return err
	}
	if lastSeen == 0 {
		return nil
	}
	return w.reconcileExited(ctx, lastSeen, subscribed)
}

func (w *Watcher) reconcileExited(ctx context.Context, lastSeen, subscribed int64) error {
	list, err := w.c.listExited(ctx, w.selects)
	if err != nil {
		return err
	}
	for _, c := range list {
		// After subscribed, the stream itself has its die event.
		if f := c.Finished.UnixNano(); c.Finished.IsZero() || f <= lastSeen || f >= subscribed {
			continue
		}
		code := c.ExitCode
		w.log.Info("found a container that exited while the docker connection was down", "container", c.Name, "container_id", hmd.ShortID(c.ID), "exit_code", code, "finished", c.Finished)
		w.sink(hmd.Observed{
			Kind:        hmd.DockerDie,
			ContainerID: c.ID,
			Name:        c.Name,
			Image:       c.Image,
			Labels:      c.Labels,
			ExitCode:    &code,
			DockerTime:  c.Finished,
			Received:    time.Now(),
			Reconciled:  true,
		})
	}
	return ctx.Err()
}

// reconcileMissed reports the unhealthy containers whose unhealthy event
// never came: the daemon dropped it.
func (w *Watcher) reconcileMissed(ctx context.Context) error { return w.reconcileIf(ctx, true) }

func (w *Watcher) reconcileIf(ctx context.Context, onlyMissed bool) error {
	ids, err := w.c.listUnhealthy(ctx)
	if err != nil {
		return err
	}
	var todo []string
	for _, id := range ids {
		w.mu.Lock()
		known := w.unhealthy[id]
		w.unhealthy[id] = true
		w.mu.Unlock()
		if onlyMissed && known {
			continue
		}
		if onlyMissed {
			w.log.Warn("found an unhealthy container whose event never came (the daemon drops events for a busy consumer); healing it", "container_id", hmd.ShortID(id))
		}
		todo = append(todo, id)
	}
	// A few inspections at once: a storm found at start is healed in
	// parallel, as one seen live would be.
	work := make(chan string)
	var wg sync.WaitGroup
	var hungMu sync.Mutex
	var hung error
	for range min(8, len(todo)) {
		wg.Go(func() {
			for id := range work {
				if err := w.inspectUnhealthy(ctx, id); err != nil {
					hungMu.Lock()
					hung = cmp.Or(hung, err)
					hungMu.Unlock()
				}
			}
		})
	}
	for _, id := range todo {
		work <- id
	}
	close(work)
	wg.Wait()
	if hung != nil {
		return hung
	}
	return ctx.Err()
}

// inspectUnhealthy reports id if it is still unhealthy. It returns an error
// only when the daemon hangs: a container removed meanwhile is no fault.
func (w *Watcher) inspectUnhealthy(ctx context.Context, id string) error {
	ct, err := w.c.Inspect(ctx, id)
	if err != nil {
		if isHang(err) && ctx.Err() == nil {
			return err
		}
		// Removed between list and inspect: nothing to heal.
		w.log.Debug("reconcile: inspect failed; skipping container", "container_id", hmd.ShortID(id), "err", err)
		return nil
	}
	if !ct.Running || ct.Health != "unhealthy" {
		return nil
	}
	w.sink(hmd.Observed{
		Kind:        hmd.DockerUnhealthy,
		ContainerID: ct.ID,
		Name:        ct.Name,
		Image:       ct.Image,
		Labels:      ct.Labels,
		DockerTime:  ct.HealthTime,
		Received:    time.Now(),
		Reconciled:  true,
	})
	return nil
}
