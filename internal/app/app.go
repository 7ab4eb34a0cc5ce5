// Package app wires the healer's components together and runs them as one
// group: the first to stop stops them all.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/run"
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
	b, err := bus.Open(ctx, bus.Options{
		DataDir:   cfg.DataDir,
		Listen:    cfg.NATSListen,
		User:      cfg.NATSUser,
		Password:  cfg.NATSPassword.Reveal(),
		Token:     cfg.NATSToken.Reveal(),
		Retention: cfg.Retention,
		Logger:    log,
	})
	if err != nil {
		_ = dc.Close()
		return nil, err
	}
	a := &App{cfg: cfg, log: log, version: version, bus: b, docker: dc, reg: prometheus.NewRegistry()}
	a.host = a.resolveHost(ctx)
	a.pub = bus.NewPublisher(b.JetStream(), 0, bus.DefaultLinger, log.With("component", "publisher"))
	started := time.Now()
	hist, initial, err := b.OpenHistory(ctx, a.host, bus.HistoryOptions{PerContainer: cfg.Policy.MaxHistoricEntries, MaxAge: cfg.Retention}, log.With("component", "history"))
	if err != nil {
		_ = b.Close()
		_ = dc.Close()
		return nil, fmt.Errorf("rebuild state: %w", err)
	}
	a.hist = hist
	log.Info("state rebuilt from history", "containers", len(initial), "took", time.Since(started))

	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hmd_heal_decision_seconds",
		Help:    "Time from reading a Docker event to sending its restart request.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
	})
	restarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hmd_restarts_total",
		Help: "Restarts by container and result.",
	}, []string{"container", "result"})
	a.reg.MustRegister(latency, restarts,
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
	)
	a.healer = heal.New(heal.Options{
		Host:            a.host,
		Label:           cfg.ContainerLabel,
		Namespace:       cfg.Namespace,
		Policy:          cfg.Policy,
		History:         hist,
		Initial:         initial,
		MaxConcurrent:   cfg.MaxConcurrentRestarts,
		Docker:          dc,
		Publisher:       a.pub,
		Log:             log.With("component", "healer"),
		DecisionLatency: func(d time.Duration) { latency.Observe(d.Seconds()) },
		Restarted: func(name string, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			restarts.WithLabelValues(name, result).Inc()
		},
	})
	return a, nil
}

// resolveHost is the configured host name, else the daemon's name, else
// ours. It is fixed for the process's life so subjects do not change.
func (a *App) resolveHost(ctx context.Context) string {
	if a.cfg.HostName != "" {
		return a.cfg.HostName
	}
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
	runners, err := a.notifiers()
	if err != nil {
		return err
	}
	// The publisher outlives the group so that what the group's last
	// moments publish is stored too.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var pubWG sync.WaitGroup
	pubWG.Go(func() { _ = a.pub.Run(pubCtx, 10*time.Second) })
	pubWG.Go(func() { _ = a.hist.Run(pubCtx) })
	a.lifecycle(events.HealerStarted, events.Data{Version: a.version})
	a.log.Info("healer started", "host", a.host, "label", a.cfg.ContainerLabel, "data_dir", a.cfg.DataDir, "version", a.version)

	var g run.Group
	gctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-gctx.Done(); return nil }, func(error) { cancel() })
	watcher := docker.NewWatcher(a.docker, a.healer.Handle, a, a.cfg.DockerPingInterval, a.log.With("component", "docker"))
	g.Add(func() error { return watcher.Run(gctx) }, func(error) { cancel() })
	g.Add(func() error { return a.healer.Run(gctx) }, func(error) { cancel() })
	if cl != nil {
		g.Add(func() error { return cl.Run(gctx) }, func(error) { cancel() })
	}
	for name, r := range runners {
		g.Add(func() error { return r.Run(gctx, name) }, func(error) { cancel() })
	}
	if a.cfg.HTTPPort != 0 {
		srv := httpapi.New(netJoin(a.cfg.HTTPAddress, a.cfg.HTTPPort), a.cfg.HTTPPrefix, a.Ready,
			promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}), a.log.With("component", "http"))
		srv.OnBound(func(addr net.Addr) { a.httpAddr.Store(&addr) })
		g.Add(func() error { return srv.Run(gctx) }, func(error) { cancel() })
	}
	err = g.Run()

	a.lifecycle(events.HealerStopped, events.Data{Version: a.version})
	stopPub()
	pubWG.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	a.log.Info("healer stopped")
	return err
}

// notifiers builds one runner per notify URL, keyed by its consumer name.
func (a *App) notifiers() (map[string]*notify.Runner, error) {
	return notify.Runners(notify.Settings{
		URLs: a.cfg.NotifyURL.Reveal(), Level: a.cfg.NotifyLevel, GroupWait: a.cfg.NotifyGroupWait,
		Username: a.cfg.NotifyUsername, TemplateFile: a.cfg.NotifyTemplateFile,
	}, a.bus.JetStream(), bus.EventsStream, a.host, a.pub, a.log.With("component", "notifier"))
}

func netJoin(host string, port int) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}
