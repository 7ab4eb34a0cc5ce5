package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/notify"
)

// ContainerLister lists the containers on the engine.
type ContainerLister interface {
	List(ctx context.Context) ([]events.Container, error)
}

// NotifyTarget is one target that `healer test-notify` sends to.
type NotifyTarget struct {
	URL string
	// From says where the target is configured: the settings, or the
	// containers whose label names it.
	From string
	// Err is set for a target that cannot be used at all (a bad label).
	Err error
}

// NotifyTargets collects every configured target: notify_url (which holds
// notify_url_file's URLs too), then the notify_url labels of the selected
// containers running now, once per URL. lister may be nil.
func NotifyTargets(ctx context.Context, cfg config.Config, lister ContainerLister) ([]NotifyTarget, error) {
	var out []NotifyTarget
	seen := map[string]int{}
	for _, u := range notify.SplitURLs(cfg.NotifyURL.Reveal()) {
		if _, ok := seen[u]; ok {
			continue
		}
		seen[u] = len(out)
		out = append(out, NotifyTarget{URL: u, From: "settings"})
	}
	if lister == nil {
		return out, nil
	}
	cts, err := lister.List(ctx)
	if err != nil {
		return out, err
	}
	sort.Slice(cts, func(i, j int) bool { return cts[i].Name < cts[j].Name })
	over := config.NewOverrides(cfg.ContainerLabel)
	for _, ct := range cts {
		if !ct.Running || !config.Selected(ct.Labels, cfg.ContainerLabel) || !config.InNamespace(ct.Name, cfg.Namespace) {
			continue
		}
		p, errs := over.Policy(cfg.Policy, ct.Labels)
		for _, e := range errs {
			if strings.HasSuffix(e.Label, "notify_url") {
				out = append(out, NotifyTarget{From: "container " + ct.Name, Err: fmt.Errorf("label %s: expected %s", e.Label, e.Expected)})
			}
		}
		if p.NotifyURL == "" {
			continue
		}
		if i, ok := seen[p.NotifyURL]; ok {
			if out[i].From != "settings" {
				out[i].From += ", " + ct.Name
			}
			continue
		}
		seen[p.NotifyURL] = len(out)
		out = append(out, NotifyTarget{URL: p.NotifyURL, From: "container " + ct.Name})
	}
	return out, nil
}

// TestNotifyOptions are the flags of `healer test-notify`.
type TestNotifyOptions struct {
	// URL tests one URL instead of the configured targets.
	URL string
}

// ParseTestNotifyArgs takes --url out of args and returns the rest.
func ParseTestNotifyArgs(args []string) (TestNotifyOptions, []string, error) {
	var o TestNotifyOptions
	fs := pflag.NewFlagSet("healer test-notify", pflag.ContinueOnError)
	fs.StringVar(&o.URL, "url", "", "send to this URL alone instead of the configured targets")
	rest, err := parseOwn(fs, args)
	if err != nil {
		return o, nil, err
	}
	o.URL = strings.TrimSpace(o.URL)
	if fs.Changed("url") && o.URL == "" {
		return o, nil, errors.New("--url is empty")
	}
	return o, rest, nil
}

// ErrSomeFailed says at least one target did not take the test message.
var ErrSomeFailed = errors.New("some targets failed")

// TestNotify sends one test message to each target (or to o.URL alone)
// and prints a line per target: its redacted URL, where it is configured,
// and OK or the error. It returns ErrSomeFailed if any failed.
func TestNotify(ctx context.Context, o TestNotifyOptions, cfg config.Config, stdout, stderr io.Writer) error {
	var targets []NotifyTarget
	if o.URL != "" {
		targets = []NotifyTarget{{URL: o.URL, From: "--url"}}
	} else {
		var lister ContainerLister
		dc, err := docker.NewFromEnv()
		if err == nil {
			defer dc.Close()
			lister = dc
		}
		targets, err = NotifyTargets(ctx, cfg, lister)
		if err != nil {
			// The settings' targets are still tested; the containers'
			// could not be found, which is a failure of the test.
			fmt.Fprintf(stderr, "healer test-notify: the containers' own targets are not tested: %v\n", err)
			targets = append(targets, NotifyTarget{From: "containers", Err: fmt.Errorf("list containers: %w", err)})
		}
	}
	if len(targets) == 0 {
		fmt.Fprintln(stdout, "no notification targets: set HMD_NOTIFY_URL (or HMD_NOTIFY_URL_FILE, or a container's <label>.notify_url), or give --url")
		return ErrSomeFailed
	}
	host := cfg.HostName
	if host == "" {
		host, _ = os.Hostname()
	}
	text := fmt.Sprintf("HealMyDocker test message from %s (healer test-notify at %s): notifications to this target work.", host, time.Now().UTC().Format(time.RFC3339))
	failed := false
	for _, t := range targets {
		name, err := sendTest(ctx, t, cfg.NotifyUsername, text)
		status := "OK"
		if err != nil {
			failed = true
			status = "FAILED: " + oneLine(err.Error())
		}
		fmt.Fprintf(stdout, "%-48s  %-24s  %s\n", name, t.From, status)
	}
	if failed {
		return ErrSomeFailed
	}
	return nil
}

// sendTest sends text to one target; it returns the redacted target and
// the error without the target repeated in it.
func sendTest(ctx context.Context, t NotifyTarget, username, text string) (string, error) {
	if t.Err != nil {
		return "-", t.Err
	}
	target, err := notify.NewTarget(t.URL, username)
	if err != nil {
		return notify.Redact(t.URL), err
	}
	name := target.Name()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := target.Notify(ctx, text); err != nil {
		return name, errors.New(strings.TrimPrefix(err.Error(), "notify "+name+": "))
	}
	return name, nil
}

// oneLine folds text from outside (a receiver's body) onto one line
// without control characters, so it cannot move a terminal's cursor.
func oneLine(s string) string {
	return strings.Join(strings.Fields(docker.Clean(s)), " ")
}
