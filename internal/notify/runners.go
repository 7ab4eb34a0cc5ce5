package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// Settings are the notifier's configuration, as read by either binary.
type Settings struct {
	// URLs holds one or more target URLs, separated by commas or spaces.
	URLs         string
	Level        string
	GroupWait    time.Duration
	Username     string
	TemplateFile string
	// MaxBackoff caps the wait between retries of a failing target; 0 is
	// a minute.
	MaxBackoff time.Duration
	// Sent is told of each delivery attempt's result (ok, error, refused)
	// by target; nil drops it.
	Sent func(target, result string)
	// LabelTargets is notify_label_targets: which of the routes' URLs
	// are followed (empty any, off none, else a comma list of schemes and
	// hosts). The healer checks labels by it too, but the bucket keeps a
	// route a day after the healer restarted with it tightened, and a hub's
	// notifier reads routes that hosts stored under their own settings.
	LabelTargets string
}

// SplitURLs returns the target URLs in s.
func SplitURLs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Service runs a runner per default target and per container route.
type Service struct {
	s        Settings
	js       jetstream.JetStream
	stream   string
	host     string
	pub      Publisher
	log      *slog.Logger
	level    Level
	tmpl     *template.Template
	defaults []*Runner
	// routing is every runner's view of the routes bucket.
	routing *Routing
}

// NewService checks the settings and builds the default runners, reading
// the events stream named stream.
func NewService(s Settings, js jetstream.JetStream, stream, host string, pub Publisher, log *slog.Logger) (*Service, error) {
	level, err := ParseLevel(s.Level)
	if err != nil {
		return nil, err
	}
	text := DefaultTemplate
	if s.TemplateFile != "" {
		b, err := os.ReadFile(s.TemplateFile)
		if err != nil {
			return nil, fmt.Errorf("notify template: %w", err)
		}
		text = string(b)
	}
	tmpl, err := ParseTemplate(text)
	if err != nil {
		return nil, err
	}
	sv := &Service{s: s, js: js, stream: stream, host: host, pub: pub, log: log, level: level, tmpl: tmpl, routing: NewRouting()}
	seen := map[string]bool{}
	for _, u := range SplitURLs(s.URLs) {
		target, err := NewTarget(u, s.Username)
		if err != nil {
			return nil, err
		}
		id := ConsumerName(u)
		if seen[id] {
			continue
		}
		seen[id] = true
		r := sv.runner(id, target)
		r.Default = true
		sv.defaults = append(sv.defaults, r)
		log.Info("notifying", "target", target.Name(), "id", id, "level", s.Level)
	}
	return sv, nil
}

// Targets is the number of default targets.
func (sv *Service) Targets() int { return len(sv.defaults) }

func (sv *Service) runner(id string, t Target) *Runner {
	return &Runner{
		ID: id, Routing: sv.routing, JS: sv.js, Stream: sv.stream, Target: t, Level: sv.level, Template: sv.tmpl,
		GroupWait: sv.s.GroupWait, MaxBackoff: cmp.Or(sv.s.MaxBackoff, time.Minute), Host: sv.host, Publisher: sv.pub, Log: sv.log, Sent: sv.s.Sent,
	}
}

// routeLookback is how far before a route became known its first run
// starts: the route is stored beside the event stream, not in it, so the
// first event for it can be stored a little before the route.
const routeLookback = 10 * time.Minute

// Run delivers until ctx ends, routing events by the routes that routes
// brings and starting a runner for each new target among them. A Route
// with no ID says the routes stored at start are all there: runners route
// nothing before. routes may be nil: every event goes to the default
// targets.
func (sv *Service) Run(ctx context.Context, routes <-chan Route) error {
	if routes == nil {
		sv.routing.Ready()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	type routeRun struct {
		stop     context.CancelFunc
		subjects string
	}
	running := map[string]*routeRun{}
	// refused holds the routes not followed, to say so once each.
	refused := map[string]bool{}
	for _, r := range sv.defaults {
		running[r.ID] = &routeRun{}
		wg.Go(func() { sv.run(ctx, r) })
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case rt, ok := <-routes:
			if !ok {
				routes = nil
				sv.routing.Ready()
				continue
			}
			if rt.ID == "" {
				sv.routing.Ready()
				continue
			}
			target, err := sv.follow(rt)
			if err != nil {
				if !refused[rt.ID] {
					sv.refuse(rt, err)
				}
				refused[rt.ID] = true
				// As if deleted: out of the table, so that its containers'
				// events go to the default targets, and its runner stopped.
				rt = Route{ID: rt.ID, Host: rt.Host, durable: rt.durable, Revision: rt.Revision, Deleted: true}
			} else {
				delete(refused, rt.ID)
			}
			sv.routing.Apply(rt)
			if rt.URL == "" && !rt.Deleted {
				// Containers' own levels for the default targets.
				continue
			}
			cur := running[rt.ID]
			if rt.Deleted {
				if cur != nil && cur.stop != nil {
					cur.stop()
					delete(running, rt.ID)
					// Its events are all others' now: the consumer goes.
					dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					if err := sv.js.DeleteConsumer(dctx, sv.stream, rt.consumer()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
						sv.log.Warn("notifier: could not remove an idle target's consumer", "target", rt.ID, "err", err)
					}
					cancel()
					sv.log.Info("notifier: a container target is no longer named by any container; stopped", "id", rt.ID)
				}
				continue
			}
			if def := running[strings.TrimPrefix(rt.ID, rt.Host+".")]; rt.Host != "" && def != nil && def.stop == nil {
				// A host's route to a default target: it has every event already.
				continue
			}
			subjects := rt.subjects()
			key := strings.Join(subjects, " ")
			if cur != nil && (cur.stop == nil || cur.subjects == key) {
				continue
			}
			if cur != nil {
				// Its containers changed: a new runner with the new filter.
				cur.stop()
			}
			r := sv.runner(rt.consumer(), target)
			r.TargetID = rt.target()
			r.StartAt = rt.Since.Add(-routeLookback)
			r.Subjects = subjects
			rctx, stop := context.WithCancel(ctx)
			running[rt.ID] = &routeRun{stop: stop, subjects: key}
			sv.log.Info("notifying a container's own target", "target", target.Name(), "id", rt.ID, "containers", len(rt.Containers))
			wg.Go(func() { sv.run(rctx, r) })
		}
	}
}

// errNotUsable marks a route whose URL makes no target.
var errNotUsable = errors.New("its URL makes no target")

// follow is the target of rt's URL, nil for none (a route of levels alone,
// or one deleted); an error says why rt is not followed: its key is not
// its URL's id, as a healer stores it (a key with a dot names no
// consumer), notify_label_targets does not allow it, or its URL makes no
// target.
func (sv *Service) follow(rt Route) (Target, error) {
	if rt.URL == "" || rt.Deleted {
		return nil, nil
	}
	if id, want := rt.target(), events.NotifyTargetID(rt.URL); id != want {
		return nil, fmt.Errorf("its key's id %q is not its URL's id, %s", id, want)
	}
	if err := config.LabelTargetAllowed(sv.s.LabelTargets, rt.URL); err != nil {
		return nil, err
	}
	target, err := NewTarget(rt.URL, sv.s.Username)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotUsable, err)
	}
	return target, nil
}

// refuse says that rt is not followed, and why; a URL that makes no target
// is also recorded on the stream as notify.failed, as it always was.
func (sv *Service) refuse(rt Route, err error) {
	sv.log.Warn("notifier: a container target is not followed; its containers' events go to the default targets", "id", rt.ID, "err", err)
	if errors.Is(err, errNotUsable) {
		sv.pub.Publish(events.New(events.NotifyFailed, uuid.NewString(), time.Now(), "", events.Data{
			Host: sv.host, Error: err.Error(), NotifyTarget: rt.ID,
		}))
	}
}

func (sv *Service) run(ctx context.Context, r *Runner) {
	g := &safe.Guard{Log: sv.log, Pub: sv.pub, Host: sv.host}
	// Deliveries recover on their own; this is for the rest of the runner.
	_ = g.Call(NotifyRunnerWhere+r.ID, func() string { return r.Target.Name() }, func() {
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			sv.log.Error("notifier: target stopped", "target", r.Target.Name(), "err", err)
		}
	})
}

// RunWatching runs the service with the routes in kv.
func (sv *Service) RunWatching(ctx context.Context, kv jetstream.KeyValue) error {
	routes, err := WatchRoutes(ctx, kv, sv.log)
	if err != nil {
		return err
	}
	sv.routing.latest = func(ctx context.Context) (uint64, error) {
		st, err := kv.Status(ctx)
		if err != nil {
			return 0, fmt.Errorf("routes bucket status: %w", err)
		}
		s, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo })
		if !ok {
			return 0, errors.New("routes bucket status: no stream info")
		}
		return s.StreamInfo().State.LastSeq, nil
	}
	return sv.Run(ctx, routes)
}

// WatchRoutes sends the routes in the bucket, those there now, then a
// Route with no ID, then those stored later, until ctx ends.
func WatchRoutes(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (<-chan Route, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch notify routes: %w", err)
	}
	ch := make(chan Route)
	go func() {
		defer close(ch)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					log.Warn("notifier: the routes watch ended; new container targets are not picked up")
					return
				}
				var rt Route // nil: the routes stored now are all sent
				if e != nil {
					rt = RouteFromKey(e.Key())
					if e.Operation() == jetstream.KeyValuePut {
						rt = RouteFromValue(e.Key(), bus.ParseRouteValue(e.Value()))
					}
					rt.Since, rt.Deleted, rt.Revision = e.Created(), e.Operation() != jetstream.KeyValuePut, e.Revision()
				}
				select {
				case ch <- rt:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}
