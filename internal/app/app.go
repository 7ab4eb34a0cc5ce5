// Package app wires the healer's components together and runs them as one
// group: the first to stop stops them all.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/cleaner"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
	"github.com/healmydocker/healmydocker/internal/httpapi"
	"github.com/healmydocker/healmydocker/internal/notify"
	"github.com/healmydocker/healmydocker/internal/program"
	"github.com/healmydocker/healmydocker/internal/status"
)

// App is one all-in-one healer.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	version string

	bus    *bus.Bus
	docker *docker.Client
	pub    *bus.Publisher
	hist   *bus.History
	healer *heal.Healer
	host   string
	reg    *prometheus.Registry
	routes *bus.Routes
	view   *status.View
	// started bounds the events that count in metrics: older ones are
	// replayed history.
	started  time.Time
	dupes    prometheus.Counter
	sent     *prometheus.CounterVec
	restarts *prometheus.CounterVec
	observed *prometheus.CounterVec

	// relisted asks for a listing of the containers for the status view.
	relisted chan struct{}
	// The latest status JSON, served while its key holds (status.go).
	statusMu   sync.Mutex
	statusKey  statusKey
	statusAt   time.Time
	statusBody json.RawMessage
	// stopBy is when the stop must be over (the shutdown bound).
	stopBy time.Time

	// pubReady is the publisher once built, for the store's state changes.
	pubReady  atomic.Pointer[bus.Publisher]
	selWarn   selectionWarnings
	overrides *config.Overrides
	dockerUp  atomic.Bool
	dockerErr atomic.Pointer[string]
	httpAddr  atomic.Pointer[net.Addr]
}

// New opens the bus (locking the data dir) and builds the components.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, version string) (*App, error) {
	dc, err := docker.NewFromEnv()
	if err != nil {
		return nil, err
	}
	dc.SetTimeout(cfg.DockerTimeout)
	a := &App{cfg: cfg, log: log, version: version, docker: dc, reg: prometheus.NewRegistry(), view: status.NewView(), started: time.Now(), relisted: make(chan struct{}, 1)}
	// The host names the JetStream domain, so it is known before the bus.
	a.host = a.resolveHost(ctx)
	bo := bus.Options{
		DataDir:        cfg.DataDir,
		Listen:         cfg.NATSListen,
		User:           cfg.NATSUser,
		Password:       cfg.NATSPassword.Reveal(),
		Token:          cfg.NATSToken.Reveal(),
		ReaderUser:     cfg.NATSReaderUser,
		ReaderPassword: cfg.NATSReaderPassword.Reveal(),
		TLS:            bus.TLS{Cert: cfg.NATSTLSCert, Key: cfg.NATSTLSKey, CA: cfg.NATSTLSCA},
		Retention:      cfg.Retention,
		EventsMaxBytes: cfg.EventsMaxBytes,
		OnState:        a.storeState,
		Logger:         log,
	}
	if cfg.HubURL != "" {
		bo.Domain = events.SanitizeToken(a.host)
		bo.HubURL, bo.HubUser, bo.HubPassword = cfg.HubURL.Reveal(), cfg.HubUser, cfg.HubPassword.Reveal()
	}
	b, err := bus.Open(ctx, bo)
	if err != nil {
		_ = dc.Close()
		return nil, err
	}
	a.bus = b
	a.pub = bus.NewPublisher(b.JetStream(), 0, bus.DefaultLinger, log.With("component", "publisher"))
	a.pub.Attach(b)
	a.pubReady.Store(a.pub)
	if err := b.Down(); err != nil {
		a.storeState(err)
	}
	started := time.Now()
	hlog := log.With("component", "history")
	hist, err := b.OpenHistory(ctx, a.host, bus.HistoryOptions{PerContainer: cfg.Policy.MaxHistoricEntries, MaxAge: cfg.Retention, MaxBytes: cfg.HistoryMaxBytes, AfterStore: crashAfterHistory(hlog)}, hlog)
	if err != nil {
		_ = b.Close()
		_ = dc.Close()
		return nil, fmt.Errorf("rebuild state: %w", err)
	}
	initial, folded, err := restoreStates(ctx, hist, hlog)
	if err != nil {
		_ = b.Close()
		_ = dc.Close()
		return nil, fmt.Errorf("rebuild state: %w", err)
	}
	a.hist = hist
	a.routes = bus.NewRoutesOpening(b.RoutesBucket, log.With("component", "routes"))
	a.overrides = config.NewOverrides(cfg.ContainerLabel)
	log.Info("state restored", "containers", len(initial), "history_events_folded", folded, "took", time.Since(started))

	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hmd_heal_decision_seconds",
		Help:    "Time from reading a Docker event to sending its restart request.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
	})
	a.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hmd_restarts_total",
		Help: "Restarts by container and result.",
	}, []string{"container", "result"})
	healed := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hmd_heal_seconds",
		Help:    "Time from the daemon's event to the end of a successful restart.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	a.observed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hmd_docker_events_total", Help: "Docker events observed, by kind, of selected containers and not."}, []string{"kind"})
	a.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hmd_notifications_total", Help: "Notification attempts by target and result (ok, error, refused)."}, []string{"target", "result"})
	a.dupes = prometheus.NewCounter(prometheus.CounterOpts{Name: "hmd_duplicates_removed_total", Help: "Duplicate containers removed by the cleaner."})
	a.reg.MustRegister(healed, a.observed, a.sent, a.dupes,
		newStreamCollector(a.streamState),
	)
	a.reg.MustRegister(latency, a.restarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hmd_docker_connected", Help: "1 while the Docker daemon is reachable."}, func() float64 {
			if a.dockerUp.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hmd_events_pending", Help: "Events waiting to be stored in JetStream."}, func() float64 {
			return float64(a.pub.Pending())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hmd_events_dropped_total", Help: "Events never stored: beyond the queue bound while the store failed, or left at shutdown.", ConstLabels: prometheus.Labels{"store": "events"}}, func() float64 {
			return float64(a.pub.Dropped())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hmd_events_dropped_total", Help: "Events never stored: beyond the queue bound while the store failed, or left at shutdown.", ConstLabels: prometheus.Labels{"store": "history"}}, func() float64 {
			return float64(a.hist.Dropped())
		}),
	)
	a.healer = heal.New(heal.Options{
		Host:                a.host,
		Label:               cfg.ContainerLabel,
		Namespace:           cfg.Namespace,
		Policy:              cfg.Policy,
		History:             hist,
		States:              stateStore{hist},
		Initial:             initial,
		MaxConcurrent:       cfg.MaxConcurrentRestarts,
		MaxLabelStopTimeout: cfg.MaxLabelStopTimeout,
		Docker:              dc,
		Publisher:           a.pub,
		Log:                 log.With("component", "healer"),
		DecisionLatency:     func(d time.Duration) { latency.Observe(d.Seconds()) },
		Healed:              func(d time.Duration) { healed.Observe(d.Seconds()) },
		Restarted: func(name string, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			a.restarts.WithLabelValues(name, result).Inc()
		},
	})
	return a, nil
}

// storeState tells of the store going down in a healer.degraded event,
// queued until the store is back.
func (a *App) storeState(err error) {
	if err == nil {
		return
	}
	if p := a.pubReady.Load(); p != nil {
		p.Publish(events.New(events.Degraded, uuid.NewString(), time.Now(), "", events.Data{Host: a.host, Reason: err.Error()}))
	}
}

// resolveHost is the host name stored in the data dir; at the first start,
// the configured one, else the daemon's name, else ours. HMD_HOST_NAME
// renames it. It is kept so history and subjects do not fork.
func (a *App) resolveHost(ctx context.Context) string {
	return hostIdentity(a.cfg.DataDir, a.cfg.HostName, func() string { return a.deriveHost(ctx) }, a.log)
}

func (a *App) deriveHost(ctx context.Context) string {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := a.docker.Connect(cctx)
	if err == nil && info.Name != "" {
		return info.Name
	}
	h, herr := os.Hostname()
	if herr != nil || h == "" {
		h = "localhost"
	}
	a.log.Warn("docker daemon name unknown; using this machine's host name in subjects (set HMD_HOST_NAME to fix it)", "host", h, "err", err)
	return h
}

// Bus is the embedded bus, for in-process subscribers.
func (a *App) Bus() *bus.Bus { return a.bus }

// Host is the host name in subjects and sources.
func (a *App) Host() string { return a.host }

// HTTPAddr is the bound HTTP address, nil before it is bound.
func (a *App) HTTPAddr() net.Addr {
	if p := a.httpAddr.Load(); p != nil {
		return *p
	}
	return nil
}

// Ready reports why the healer is not ready, or nil.
func (a *App) Ready() error {
	if err := a.bus.Ready(); err != nil {
		return fmt.Errorf("bus: %w", err)
	}
	if err := a.pub.Healthy(); err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	if err := a.hist.Healthy(); err != nil {
		return fmt.Errorf("history store: %w", err)
	}
	if !a.dockerUp.Load() {
		msg := "not connected yet"
		if p := a.dockerErr.Load(); p != nil {
			msg = *p
		}
		return fmt.Errorf("docker: %s", msg)
	}
	return nil
}

// DockerConnected implements docker.Status.
func (a *App) DockerConnected(info docker.Info) {
	a.dockerUp.Store(true)
	a.relist()
	a.log.Info("docker connected", "daemon", info.Name, "version", info.Version, "api", info.APIVersion, "host", a.docker.Host())
	a.lifecycle(events.DockerConnected, events.Data{Version: info.Version, Reason: "api " + info.APIVersion})
}

// DockerLost implements docker.Status.
func (a *App) DockerLost(err error) {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	a.dockerErr.Store(&msg)
	if a.dockerUp.Swap(false) {
		a.lifecycle(events.DockerLost, events.Data{Error: msg})
	}
}

func (a *App) lifecycle(k events.Kind, d events.Data) {
	d.Host = a.host
	a.pub.Publish(events.New(k, uuid.NewString(), time.Now(), "", d))
}

// Run heals until ctx ends, then stops the components in order and closes
// the bus. It returns the first component's error.
func (a *App) Run(ctx context.Context) error {
	defer func() {
		if err := a.bus.Close(); err != nil {
			a.log.Error("closing the bus", "err", err)
		}
		_ = a.docker.Close()
	}()
	var cl *cleaner.Cleaner
	// The cleaner sweeps only where it may act: off by default, it costs
	// the daemon nothing.
	if a.cfg.Policy.CleanDuplicates || a.cfg.RunCleaner {
		triggers, unsubscribe, err := bus.Trigger(a.bus.Conn(), a.host, cleaner.TriggerKinds, a.log)
		if err != nil {
			return fmt.Errorf("start cleaner: %w", err)
		}
		defer unsubscribe()
		cl = cleaner.New(cleaner.Options{
			Host: a.host, Label: a.cfg.ContainerLabel, Namespace: a.cfg.Namespace, Policy: a.cfg.Policy,
			DryRun: a.cfg.CleanDryRun, Grace: a.cfg.CleanGrace, Interval: a.cfg.CleanInterval,
			Docker: a.docker, Publisher: a.pub, Triggers: triggers, Log: a.log.With("component", "cleaner"),
		})
	}
	var svc *notify.Service
	if a.cfg.RunNotifier {
		var err error
		if svc, err = a.notifier(); err != nil {
			return err
		}
	}
	// The publisher outlives the group so that what the group's last
	// moments publish is stored too.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var pubWG sync.WaitGroup
	pubWG.Go(func() { _ = a.pub.Run(pubCtx, a.shutdownTimeout()) })
	pubWG.Go(func() { _ = a.hist.Run(pubCtx) })
	a.lifecycle(events.HealerStarted, events.Data{Version: a.version})
	a.log.Info("healer started", "host", a.host, "label", a.cfg.ContainerLabel, "data_dir", a.cfg.DataDir, "version", a.version)

	var g program.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
	watcher := docker.NewWatcher(a.docker, a.observe, a, a.cfg.DockerPingInterval, a.log.With("component", "docker"))
	watcher.ReconcileEvery(a.cfg.DockerReconcileInterval)
	watcher.Selects(func(labels map[string]string, name string) bool {
		return heal.Watched(labels, name, a.cfg.ContainerLabel, a.cfg.Namespace)
	})
	g.Add(func() error { return a.followView(gctx) }, func(error) { cancel() })
	g.Add(func() error { return a.listView(gctx) }, func(error) { cancel() })
	g.Add(func() error { return watcher.Run(gctx) }, func(error) { cancel() })
	g.Add(func() error { return a.healer.Run(gctx) }, func(error) { cancel() })
	if cl != nil {
		g.Add(func() error { return cl.Run(gctx) }, func(error) { cancel() })
	}
	g.Add(func() error { return a.routes.Run(gctx) }, func(error) { cancel() })
	g.Add(func() error { return a.refreshRoutes(gctx) }, func(error) { cancel() })
	if a.cfg.HubURL != "" {
		g.Add(func() error {
			if err := a.bus.WaitUp(gctx); err != nil {
				return nil
			}
			return a.bus.JoinFleet(gctx, a.cfg.HubDomain, a.cfg.HubStream, events.SanitizeToken(a.host), a.log.With("component", "fleet"))
		}, func(error) { cancel() })
	}
	if svc != nil {
		g.Add(func() error {
			kv, err := a.bus.RoutesBucket(gctx)
			if err != nil {
				return nil
			}
			return svc.RunWatching(gctx, kv)
		}, func(error) { cancel() })
	}
	if a.cfg.HTTPPort != 0 {
		srv := httpapi.New(httpapi.Options{
			Addr: netJoin(a.cfg.HTTPAddress, a.cfg.HTTPPort), Prefix: a.cfg.HTTPPrefix, Token: a.cfg.HTTPToken.Reveal(), MaxStreams: a.cfg.HTTPMaxStreams,
			Ready: a.Ready, Metrics: promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}),
			Status: a.Status, Control: a.Control, Subscribe: func(f func([]byte)) (func(), error) { return bus.Live(a.bus.Conn(), f) }, Log: a.log.With("component", "http"),
			Guard: a.guard(),
		})
		srv.OnBound(func(addr net.Addr) { a.httpAddr.Store(&addr) })
		g.Add(func() error { return srv.Run(gctx) }, func(error) { cancel() })
	}
	err := a.runBounded(ctx, g.Run)

	a.lifecycle(events.HealerStopped, events.Data{Version: a.version})
	stopPub()
	a.waitBounded(&pubWG)
	if n, h := a.pub.Unstored(), a.hist.Unstored(); n+h > 0 {
		a.log.Error("events not stored at shutdown; counted in hmd_events_dropped_total", "events", n, "history", h, "store", errString(a.bus.Down()))
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	a.log.Info("healer stopped")
	return err
}

// shutdownTimeout is the bound on the healer's stop.
func (a *App) shutdownTimeout() time.Duration {
	if a.cfg.ShutdownTimeout > 0 {
		return a.cfg.ShutdownTimeout
	}
	return 10 * time.Second
}

// runBounded runs the group; once ctx ends it waits for the group at most
// half the shutdown bound, so that the other half is left to store what
// was queued. A restart in flight is left to finish or be cut off with the
// process: waiting for a hung daemon would hold the stop for ever.
func (a *App) runBounded(ctx context.Context, run func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- run() }()
	select {
	case err := <-errc:
		a.stopBy = time.Now().Add(a.shutdownTimeout())
		return err
	case <-ctx.Done():
	}
	a.stopBy = time.Now().Add(a.shutdownTimeout())
	t := time.NewTimer(a.shutdownTimeout() / 2)
	defer t.Stop()
	select {
	case err := <-errc:
		return err
	case <-t.C:
		a.log.Error("shutdown bound: not waiting any longer for running work (a restart in flight, or a hung Docker call); storing what is queued", "shutdown_timeout", a.shutdownTimeout())
		return nil
	}
}

// waitBounded waits for wg until the shutdown bound.
func (a *App) waitBounded(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(time.Until(a.stopBy))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		a.log.Error("shutdown bound reached before every queued event was stored", "pending", a.pub.Pending(), "shutdown_timeout", a.shutdownTimeout())
	}
}

// notifier builds the in-process notifier: the configured targets and
// those in containers' labels.
func (a *App) notifier() (*notify.Service, error) {
	return notify.NewService(notify.Settings{
		URLs: a.cfg.NotifyURL.Reveal(), Level: a.cfg.NotifyLevel, GroupWait: a.cfg.NotifyGroupWait, MaxBackoff: a.cfg.NotifyMaxBackoff,
		Username: a.cfg.NotifyUsername, TemplateFile: a.cfg.NotifyTemplateFile,
		Sent:         func(target, result string) { a.sent.WithLabelValues(target, result).Inc() },
		LabelTargets: a.cfg.Policy.NotifyLabelTargets,
	}, a.bus.JetStream(), bus.EventsStream, a.host, a.pub, a.log.With("component", "notifier"))
}

func errString(err error) string {
	if err == nil {
		return "up"
	}
	return err.Error()
}

func netJoin(host string, port int) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}
