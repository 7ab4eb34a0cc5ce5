package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

// EventsOptions are the flags of `healer events`, beside the settings.
type EventsOptions struct {
	Follow    bool
	Since     time.Duration
	Container string
	JSON      bool
	// Hub reads the hub's fleet stream: every host's events.
	Hub bool
}

// ParseEventsArgs takes the events command's own flags out of args and
// returns the rest, which are settings.
func ParseEventsArgs(args []string) (EventsOptions, []string, error) {
	var o EventsOptions
	fs := pflag.NewFlagSet("healer events", pflag.ContinueOnError)
	fs.BoolVarP(&o.Follow, "follow", "f", false, "print the live events after the history")
	fs.BoolVar(&o.Hub, "hub", false, "read the hub's fleet stream: every host's events")
	fs.Var(sinceFlag{&o.Since}, "since", "only the events of this last while, such as 1h or 30m")
	fs.StringVar(&o.Container, "container", "", "only the events of the container so named")
	outputVar(fs, &o.JSON)
	rest, err := parseOwn(fs, args)
	o.Container = strings.TrimPrefix(o.Container, "/")
	return o, rest, err
}

// Events prints the history of events from JetStream, and with Follow the
// live events after it: through a running healer's NATS listener when
// nats_url is set, else from the data dir of a stopped healer.
func Events(ctx context.Context, o EventsOptions, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	js, closeFn, err := openEvents(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeFn()
	filter := events.SubjectRoot + ".>"
	if o.Container != "" {
		filter = events.SubjectRoot + ".*." + events.SanitizeToken(o.Container) + ".>"
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if o.Since > 0 {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, ptr(time.Now().Add(-o.Since))
	}
	stream := cfg.EventsStream
	if o.Hub {
		stream = cfg.HubStream
	}
	c, err := js.OrderedConsumer(ctx, stream, cc)
	if err != nil {
		return fmt.Errorf("read the events stream %s: %w", stream, err)
	}
	p := printer{w: stdout, json: o.JSON}
	if !o.JSON {
		p.header()
	}
	for {
		wait := 2 * time.Second
		if o.Follow {
			wait = time.Minute
		}
		nctx, cancel := context.WithTimeout(ctx, wait)
		m, err := c.Next(jetstream.FetchContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if o.Follow {
				continue
			}
			return nil
		case err != nil:
			return fmt.Errorf("read the events stream: %w", err)
		}
		p.print(m.Data())
		if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 && !o.Follow {
			return nil
		}
	}
}

func ptr[T any](v T) *T { return &v }

// openEvents reaches the stream: the listener, or the data dir, which a
// running healer holds locked.
func openEvents(ctx context.Context, cfg config.Config, log *slog.Logger) (jetstream.JetStream, func(), error) {
	if cfg.NATSURL != "" {
		nc, js, err := connect(cfg, "healer-events", log)
		if err != nil {
			return nil, nil, err
		}
		return js, nc.Close, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		return nil, nil, fmt.Errorf("no event history in data dir %s (%v); give the healer's data dir, or --nats-url of a running healer", cfg.DataDir, err)
	}
	b, err := bus.Open(ctx, bus.Options{DataDir: cfg.DataDir, ReadOnly: true, Logger: log})
	if errors.Is(err, bus.ErrLocked) {
		return nil, nil, fmt.Errorf("%w: a healer is running on %s; read its events through its NATS listener with --nats-url (and credentials)", err, cfg.DataDir)
	}
	if err != nil {
		return nil, nil, err
	}
	return b.JetStream(), func() { _ = b.Close() }, nil
}

type printer struct {
	w    io.Writer
	json bool
}

func (p printer) header() {
	fmt.Fprintf(p.w, "%-23s  %-12s  %-28s  %-30s  %s\n", "TIME", "HOST", "CONTAINER", "EVENT", "DETAILS")
}

func (p printer) print(data []byte) {
	if p.json {
		fmt.Fprintf(p.w, "%s\n", data)
		return
	}
	e, err := events.Unmarshal(data)
	if err != nil {
		fmt.Fprintf(p.w, "%-23s  %s\n", "?", terminalSafe("undecodable event: "+err.Error()))
		return
	}
	container := e.Subject
	if container == "" {
		container = "-"
	}
	fmt.Fprintf(p.w, "%-23s  %-12s  %-28s  %-30s  %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"),
		terminalSafe(e.Data.Host), terminalSafe(container), terminalSafe(string(e.Kind())), terminalSafe(details(e.Data)))
}

// terminalSafe drops what a terminal would obey instead of show: escape
// sequences and other control characters (C0 and C1), and the format
// characters that reorder text. Events carry outside text: label values,
// probe output, Docker's errors.
func terminalSafe(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

// details is the part of an event's data a person reads first.
func details(d events.Data) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("reason", d.Reason)
	if d.ExitCode != nil {
		add("exit_code", fmt.Sprint(*d.ExitCode))
	}
	if d.FrameRestarts > 0 {
		add("frame_restarts", fmt.Sprint(d.FrameRestarts))
	}
	if d.DurationMS > 0 {
		add("took", fmt.Sprintf("%.0fms", d.DurationMS))
	}
	add("error", d.Error)
	add("canonical", d.Canonical)
	add("label", d.Label)
	add("output", strings.Join(strings.Fields(d.Output), " "))
	if d.LogTail != "" {
		// The lines themselves are in -o json; a table row stays one line.
		add("log_tail", fmt.Sprintf("%d lines", strings.Count(d.LogTail, "\n")+1))
	}
	return strings.Join(parts, " ")
}
