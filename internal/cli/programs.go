package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/cleaner"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/notify"
	"github.com/healmydocker/healmydocker/internal/program"
)

// Notifier is the split notifier: it delivers the healer's events from
// durable consumers on the healer's NATS listener.
func Notifier(version, commit string) program.Daemon {
	return split{Name: "notifier", Version: version, Commit: commit, Run: startNotifier}.daemon()
}

// Cleaner is the split duplicate cleaner: it talks to the Docker socket (or
// a socket proxy) and to the healer's NATS listener, whose container events
// trigger its sweeps and whose stream records what it did.
func Cleaner(version, commit string) program.Daemon {
	return split{Name: "cleaner", Version: version, Commit: commit, Run: startCleaner}.daemon()
}

func startNotifier(ctx context.Context, cfg config.Config, b Bus, log *slog.Logger) ([]func(context.Context) error, error) {
	svc, err := notify.NewService(notify.Settings{
		URLs: cfg.NotifyURL.Reveal(), Level: cfg.NotifyLevel, GroupWait: cfg.NotifyGroupWait, MaxBackoff: cfg.NotifyMaxBackoff,
		Username: cfg.NotifyUsername, TemplateFile: cfg.NotifyTemplateFile, LabelTargets: cfg.Policy.NotifyLabelTargets,
	}, b.JetStream, cfg.EventsStream, notifierHost(cfg.HostName), b.Publisher, log)
	if err != nil {
		return nil, err
	}
	kv, err := bus.RoutesBucketOf(ctx, b.JetStream)
	if err != nil {
		return nil, err
	}
	return []func(context.Context) error{func(ctx context.Context) error { return svc.RunWatching(ctx, kv) }}, nil
}

// notifierHost names the notifier in the events it publishes itself.
func notifierHost(configured string) string {
	if configured != "" {
		return configured
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "notifier"
}

func startCleaner(ctx context.Context, cfg config.Config, b Bus, log *slog.Logger) ([]func(context.Context) error, error) {
	dc, err := docker.NewFromEnv()
	if err != nil {
		return nil, err
	}
	dc.SetTimeout(cfg.DockerTimeout)
	host := cfg.HostName
	if host == "" {
		info, err := dc.Connect(ctx)
		if err != nil {
			_ = dc.Close()
			return nil, fmt.Errorf("host name: %w (or set HMD_HOST_NAME)", err)
		}
		host = info.Name
	}
	triggers, unsubscribe, err := bus.Trigger(b.Conn, host, cleaner.TriggerKinds, log)
	if err != nil {
		_ = dc.Close()
		return nil, err
	}
	cl := cleaner.New(cleaner.Options{
		Host: host, Label: cfg.ContainerLabel, Namespace: cfg.Namespace, Policy: cfg.Policy,
		DryRun: cfg.CleanDryRun, Grace: cfg.CleanGrace, Interval: cfg.CleanInterval,
		Docker: dc, Publisher: b.Publisher, Triggers: triggers, Log: log,
	})
	log.Info("cleaning", "host", host, "dry_run", cfg.CleanDryRun, "default", cfg.Policy.CleanDuplicates)
	return []func(context.Context) error{func(ctx context.Context) error {
		defer dc.Close()
		defer unsubscribe()
		return cl.Run(ctx)
	}}, nil
}
