package cleaner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// TriggerKinds are the events that ask for a sweep; healthy, because a
// duplicate waits for its canonical sibling to be healthy.
var TriggerKinds = []events.Kind{events.DockerCreate, events.DockerRename, events.DockerStart, events.DockerHealthy}

// Docker is what the cleaner needs of the engine.
type Docker interface {
	List(ctx context.Context) ([]events.Container, error)
	Inspect(ctx context.Context, id string) (events.Container, error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
}

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Options configure a Cleaner.
type Options struct {
	Host      string
	Label     string
	Namespace string
	// Policy holds the defaults: CleanDuplicates and StopTimeout, which a
	// container's labels may override.
	Policy   config.Policy
	DryRun   bool
	Grace    time.Duration
	Interval time.Duration
	Docker   Docker
	// Publisher gets the cleaner's events.
	Publisher Publisher
	// Triggers asks for a sweep: container create, rename and start events
	// from the bus.
	Triggers <-chan struct{}
	Log      *slog.Logger
	Now      func() time.Time
}

// Cleaner sweeps for compose duplicates at start, on triggers, on a timer,
// and when a duplicate's grace period ends.
type Cleaner struct {
	o         Options
	overrides *config.Overrides

	mu sync.Mutex
	// told remembers what was published about a container, so a sweep
	// every few minutes does not repeat the same warning.
	told map[string]string
}

// New returns a cleaner.
func New(o Options) *Cleaner {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cleaner{o: o, overrides: config.NewOverrides(o.Label), told: map[string]string{}}
}

// Run sweeps until ctx ends.
func (c *Cleaner) Run(ctx context.Context) error {
	tick := time.NewTicker(c.o.Interval)
	defer tick.Stop()
	// Not a retry: a duplicate in its grace is looked at again when the
	// grace ends, the time Find gave.
	graceEnds := time.NewTimer(time.Hour)
	graceEnds.Stop()
	for {
		if next := c.sweepSafely(ctx); !next.IsZero() {
			graceEnds.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-graceEnds.C:
		case <-c.o.Triggers:
			// Compose makes containers in bursts: one sweep for the burst.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			drain(c.o.Triggers)
		}
	}
}

// sweepSafely sweeps; a panic on some container's labels or names is
// reported as healer.panic and the next sweep comes as usual.
func (c *Cleaner) sweepSafely(ctx context.Context) (next time.Time) {
	g := &safe.Guard{Log: c.o.Log, Pub: c.o.Publisher, Host: c.o.Host}
	_ = g.Call("cleaner sweep", nil, func() { next = c.Sweep(ctx) })
	return next
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// Sweep looks at every container once and acts on what Find says. It
// returns the earliest time a duplicate's grace ends, zero if none waits.
func (c *Cleaner) Sweep(ctx context.Context) time.Time {
	cs, err := c.o.Docker.List(ctx)
	if err != nil {
		c.o.Log.Error("cleaner: cannot list containers; sweeping again later", "err", err)
		return time.Time{}
	}
	var next time.Time
	for _, f := range Find(cs, c.o.Now(), c.o.Grace) {
		d := f.Duplicate
		if !config.Selected(d.Labels, c.o.Label) || !config.InNamespace(d.Name, c.o.Namespace) {
			continue
		}
		p, _ := c.overrides.Policy(c.o.Policy, d.Labels)
		if !p.CleanDuplicates {
			continue
		}
		switch f.Action {
		case Keep:
			c.kept(d, f)
		case Wait:
			c.kept(d, f)
			if next.IsZero() || f.RetryAt.Before(next) {
				next = f.RetryAt
			}
		case Remove:
			c.remove(ctx, f, p)
		}
	}
	return next
}

func (c *Cleaner) kept(d events.Container, f Finding) {
	c.mu.Lock()
	same := c.told[d.ID] == f.Reason
	c.told[d.ID] = f.Reason
	c.mu.Unlock()
	if same {
		return
	}
	lvl := slog.LevelInfo
	if f.Reason == ReasonNoSibling {
		lvl = slog.LevelWarn
	}
	c.o.Log.Log(context.Background(), lvl, "cleaner: keeping prefixed container", "container", d.Name, "container_id", events.ShortID(d.ID), "reason", f.Reason)
	c.publish(events.CleanupKept, uuid.NewString(), f, events.Data{Reason: f.Reason})
}

// remove looks at the duplicate and its sibling again, then stops and
// removes the duplicate, keeping its volumes.
func (c *Cleaner) remove(ctx context.Context, f Finding, p config.Policy) {
	d := f.Duplicate
	id := "cleanup/" + events.SanitizeToken(c.o.Host) + "/" + events.ShortID(d.ID)
	now, err := c.o.Docker.Inspect(ctx, d.ID)
	var sib events.Container
	if err == nil {
		sib, err = c.o.Docker.Inspect(ctx, f.Canonical.ID)
	}
	if err != nil || !Unchanged(d, now) || !StillCanonical(sib) {
		c.kept(d, Finding{Duplicate: d, Canonical: f.Canonical, Reason: ReasonChanged})
		return
	}
	if c.o.DryRun {
		c.mu.Lock()
		told := c.told[d.ID] == ReasonDryRun
		c.told[d.ID] = ReasonDryRun
		c.mu.Unlock()
		if !told {
			c.o.Log.Info("cleaner: dry run: would remove duplicate", "container", d.Name, "canonical", f.Canonical.Name)
			c.publish(events.CleanupFound, id+"/dry_run", f, events.Data{Reason: ReasonDryRun, DryRun: true})
		}
		return
	}
	c.publish(events.CleanupFound, id+"/found", f, events.Data{Reason: f.Reason})
	if now.Running {
		timeout := p.StopTimeout
		if now.StopTimeout > 0 {
			timeout = now.StopTimeout
		}
		if err := c.o.Docker.Stop(ctx, d.ID, timeout); err != nil {
			c.failed(f, err)
			return
		}
	}
	if err := c.o.Docker.Remove(ctx, d.ID); err != nil {
		c.failed(f, err)
		return
	}
	c.mu.Lock()
	delete(c.told, d.ID)
	c.mu.Unlock()
	c.o.Log.Info("cleaner: removed duplicate", "container", d.Name, "container_id", events.ShortID(d.ID), "canonical", f.Canonical.Name)
	c.publish(events.CleanupRemoved, id+"/removed", f, events.Data{Reason: f.Reason})
}

func (c *Cleaner) failed(f Finding, err error) {
	c.o.Log.Error("cleaner: removing duplicate failed", "container", f.Duplicate.Name, "err", err)
	c.publish(events.CleanupFailed, uuid.NewString(), f, events.Data{Reason: f.Reason, Error: err.Error()})
}

func (c *Cleaner) publish(k events.Kind, id string, f Finding, d events.Data) {
	d.Host, d.ContainerID, d.Container, d.Image = c.o.Host, f.Duplicate.ID, f.Duplicate.Name, f.Duplicate.Image
	if f.Canonical != nil {
		d.Canonical = f.Canonical.Name
	}
	c.o.Publisher.Publish(events.New(k, id, c.o.Now(), f.Duplicate.Name, d))
}
