package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gofrs/flock"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/docker"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/heal"
)

// CheckOptions are the flags of `healer check`.
type CheckOptions struct {
	// Container explains one container in full.
	Container string
	JSON      bool
}

// ParseCheckArgs takes check's own arguments (NAME, -o) out of args and
// returns the rest, which are settings.
func ParseCheckArgs(args []string) (CheckOptions, []string, error) {
	var o CheckOptions
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case name == "-o" || name == "--output":
			if !hasVal {
				if i+1 >= len(args) {
					return o, nil, fmt.Errorf("%s needs a value", name)
				}
				i++
				val = args[i]
			}
			switch val {
			case "json":
				o.JSON = true
			case "table":
			default:
				return o, nil, fmt.Errorf("%s %q: expected table or json", name, val)
			}
		case !strings.HasPrefix(a, "-") && o.Container == "" && (i == 0 || !strings.HasPrefix(args[i-1], "--") || strings.Contains(args[i-1], "=")):
			// A bare word right after a flag without "=" is that flag's
			// value; the first other one is the container.
			o.Container = strings.TrimPrefix(a, "/")
		default:
			rest = append(rest, a)
		}
	}
	return o, rest, nil
}

// CheckReport is what `healer check -o json` prints.
type CheckReport struct {
	Config     CheckConfig       `json:"config"`
	Docker     CheckDocker       `json:"docker"`
	DataDir    CheckDataDir      `json:"data_dir"`
	Containers []CheckContainer  `json:"containers"`
	History    *CheckHistory     `json:"history,omitempty"`
	Problems   []string          `json:"problems,omitempty"`
	Defaults   map[string]string `json:"default_policy"`
}

// CheckConfig sums up the settings that decide which containers are healed.
type CheckConfig struct {
	OK             bool     `json:"ok"`
	ContainerLabel string   `json:"container_label"`
	Namespace      string   `json:"namespace,omitempty"`
	NotifyTargets  int      `json:"notify_targets"`
	Warnings       []string `json:"warnings,omitempty"`
}

// CheckDocker is the daemon the healer would talk to.
type CheckDocker struct {
	Host       string `json:"host"`
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	Error      string `json:"error,omitempty"`
}

// CheckDataDir is the state of the event store's directory.
type CheckDataDir struct {
	Path     string `json:"path"`
	Exists   bool   `json:"exists"`
	Writable bool   `json:"writable"`
	// Locked: a running healer holds it (PID from its lock file).
	Locked bool   `json:"locked"`
	PID    string `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
}

// CheckContainer explains one container.
type CheckContainer struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Image    string `json:"image"`
	State    string `json:"state"`
	Selected bool   `json:"selected"`
	// Why says what selects it, or what leaves it alone.
	Why         string `json:"why"`
	Healthcheck bool   `json:"healthcheck"`
	Health      string `json:"health,omitempty"`
	// Labels are the override labels that changed its policy (and bad ones).
	Labels   []config.AppliedLabel `json:"labels,omitempty"`
	Policy   map[string]string     `json:"policy,omitempty"`
	Warnings []string              `json:"warnings,omitempty"`
}

// Reasons a labelled container is left alone, matching the healer's.
const (
	swarmTaskLabel = "com.docker.swarm.task.id"
	oneOffLabel    = "com.docker.compose.oneoff"
)

// explain decides what check says of one container. Pure: the tests of
// the healer's own decisions are the authority; this mirrors its
// selection for people.
func explain(d docker.Described, cfg config.Config, over *config.Overrides) CheckContainer {
	c := CheckContainer{Name: d.Name, ID: events.ShortID(d.ID), Image: d.Image, State: d.State,
		Healthcheck: d.Healthcheck, Health: d.Health}
	sel, why := config.SelectedBy(d.Labels, cfg.ContainerLabel)
	labelled := sel
	switch {
	case !sel:
	case !config.InNamespace(d.Name, cfg.Namespace):
		sel, labelled, why = false, false, fmt.Sprintf("name outside namespace %q", cfg.Namespace)
	case d.Labels[swarmTaskLabel] != "":
		sel, why = false, "a Swarm task ("+swarmTaskLabel+"): Swarm replaces it"
	case strings.EqualFold(strings.TrimSpace(d.Labels[oneOffLabel]), "true"):
		sel, why = false, "a compose one-off ("+oneOffLabel+"=True): not started again"
	case d.State == "paused":
		sel, why = false, "paused: left alone until unpaused"
	}
	c.Selected, c.Why = sel, why
	if !labelled {
		return c
	}
	p, _ := over.Policy(cfg.Policy, d.Labels)
	c.Policy = p.Values()
	for _, a := range over.Applied(d.Labels) {
		a.Value = oneLine(a.Value)
		c.Labels = append(c.Labels, a)
		if a.Error != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("invalid label %s=%q: %s; the default applies", a.Label, a.Value, a.Error))
		}
	}
	if sel && !d.Healthcheck {
		c.Warnings = append(c.Warnings, "no HEALTHCHECK: healed only when it crashes"+map[bool]string{true: "", false: " (and heal_exited is off: never)"}[p.HealExited])
	}
	return c
}

// Check prints the report: configuration, Docker, data dir, and every
// container (or one, with its history). It returns an error when Docker
// cannot be reached or the data dir cannot be used.
func Check(ctx context.Context, o CheckOptions, cfg config.Config, warnings []string, stdout io.Writer, log *slog.Logger) error {
	r := CheckReport{
		Config: CheckConfig{OK: true, ContainerLabel: cfg.ContainerLabel, Namespace: cfg.Namespace,
			NotifyTargets: len(strings.Fields(strings.NewReplacer(",", " ").Replace(cfg.NotifyURL.Reveal()))), Warnings: warnings},
		DataDir:  checkDataDir(cfg.DataDir),
		Defaults: cfg.Policy.Values(),
	}
	if r.DataDir.Error != "" {
		r.Problems = append(r.Problems, "data dir: "+r.DataDir.Error)
	}
	// The one container's effective policy, for when it would next be
	// restarted.
	var policy *config.Policy
	dc, err := docker.NewFromEnv()
	if err != nil {
		r.Docker.Error = err.Error()
	} else {
		defer dc.Close()
		r.Docker.Host = dc.Host()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		info, err := dc.Connect(cctx)
		if err == nil {
			r.Docker.Name, r.Docker.Version, r.Docker.APIVersion = info.Name, info.Version, info.APIVersion
			var ds []docker.Described
			ds, err = dc.Describe(cctx)
			over := config.NewOverrides(cfg.ContainerLabel)
			for _, d := range ds {
				if o.Container != "" && d.Name != o.Container && !strings.HasPrefix(d.ID, o.Container) {
					continue
				}
				r.Containers = append(r.Containers, explain(d, cfg, over))
				if o.Container != "" {
					p, _ := over.Policy(cfg.Policy, d.Labels)
					policy = &p
				}
			}
		}
		cancel()
		if err != nil {
			r.Docker.Error = err.Error()
		}
	}
	if r.Docker.Error != "" {
		r.Problems = append(r.Problems, "docker: "+r.Docker.Error)
	}
	sort.Slice(r.Containers, func(i, j int) bool { return r.Containers[i].Name < r.Containers[j].Name })
	if o.Container != "" {
		if len(r.Containers) == 0 && r.Docker.Error == "" {
			r.Problems = append(r.Problems, fmt.Sprintf("no container named %q", o.Container))
		}
		name := o.Container
		if len(r.Containers) == 1 {
			name = r.Containers[0].Name
		}
		h := readHistory(ctx, cfg, r.DataDir, name, log)
		if h.State != nil && policy != nil {
			h.Next = NextRestart(*h.State, *policy, time.Now())
		}
		r.History = &h
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printCheck(stdout, r, o.Container != "")
	}
	if len(r.Problems) > 0 {
		return errors.New(strings.Join(r.Problems, "; "))
	}
	return nil
}

// checkDataDir looks at the data dir without changing it: a probe file
// is created and removed, and the lock is tried and let go at once.
func checkDataDir(dir string) CheckDataDir {
	d := CheckDataDir{Path: dir}
	if abs, err := filepath.Abs(dir); err == nil {
		d.Path = abs
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// The healer creates it: its parent must be writable.
		d.Writable = writable(filepath.Dir(d.Path))
		if !d.Writable {
			d.Error = "does not exist, and its parent is not writable"
		}
		return d
	case err != nil:
		d.Error = err.Error()
		return d
	case !st.IsDir():
		d.Error = "not a directory"
		return d
	}
	d.Exists = true
	d.Writable = writable(dir)
	if !d.Writable {
		d.Error = "not writable"
	}
	lockPath := filepath.Join(dir, "healer.lock")
	if _, err := os.Stat(lockPath); err == nil {
		l := flock.New(lockPath)
		ok, err := l.TryRLock()
		switch {
		case err != nil:
			d.Error = fmt.Sprintf("lock %s: %v", lockPath, err)
		case !ok:
			d.Locked = true
			if b, err := os.ReadFile(lockPath); err == nil {
				d.PID = strings.TrimSpace(string(b))
			}
		default:
			_ = l.Unlock()
		}
	}
	return d
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".hmd-check-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name) == nil
}

// CheckHistory is what the event history says of one container.
type CheckHistory struct {
	// Source is where it was read: the listener or the data dir.
	Source string `json:"source,omitempty"`
	// Unavailable says why it could not be read.
	Unavailable string         `json:"unavailable,omitempty"`
	Events      []events.Event `json:"events,omitempty"`
	// Latest is the latest restart decision's account of the container.
	Latest *CheckLatest `json:"latest,omitempty"`
	// State is the healer's own account, folded from the whole history by
	// the code that decides.
	State *heal.State `json:"state,omitempty"`
	// Next says what the healer would do if the container turned
	// unhealthy now: Decide on the State, as the healer would.
	Next *CheckNext `json:"next,omitempty"`
}

// CheckNext is the healer's answer to "if it turned unhealthy now?".
type CheckNext struct {
	// Verdict is restart, skip (until At, when set) or give_up.
	Verdict string     `json:"verdict"`
	Reason  string     `json:"reason,omitempty"`
	At      *time.Time `json:"at,omitempty"`
}

// NextRestart asks the decision function what it would do with an
// unhealthy event for a container in state s under policy p at now.
func NextRestart(s heal.State, p config.Policy, now time.Time) *CheckNext {
	d := heal.Decide(s, heal.Observation{Observed: events.Observed{Kind: events.DockerUnhealthy}}, p, now)
	n := &CheckNext{Verdict: d.Verdict.String(), Reason: d.Reason}
	if !d.RetryAt.IsZero() {
		at := d.RetryAt
		n.At = &at
	}
	return n
}

// CheckLatest is read from the latest decision event: restarts in the
// frame, given up, and when it is looked at again.
type CheckLatest struct {
	Kind          events.Kind `json:"kind"`
	Time          time.Time   `json:"time"`
	Reason        string      `json:"reason,omitempty"`
	Attempt       int         `json:"attempt,omitempty"`
	FrameRestarts int         `json:"frame_restarts,omitempty"`
	GaveUp        bool        `json:"gave_up"`
	RetryAt       *time.Time  `json:"retry_at,omitempty"`
}

// historyShown is how many of a container's events check prints.
const historyShown = 15

func readHistory(ctx context.Context, cfg config.Config, dd CheckDataDir, name string, log *slog.Logger) CheckHistory {
	var h CheckHistory
	if cfg.NATSURL == "" && dd.Locked {
		h.Unavailable = fmt.Sprintf("a healer is running on %s (pid %s) and no --nats-url was given: its history is read through its NATS listener (nats_listen on the healer, --nats-url and credentials here)", dd.Path, dd.PID)
		return h
	}
	if cfg.NATSURL == "" && !dd.Exists {
		h.Unavailable = "no data dir, so no history yet"
		return h
	}
	h.Source = "data dir " + dd.Path
	if cfg.NATSURL != "" {
		h.Source = "NATS listener"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	js, closeFn, err := openEvents(ctx, cfg, log)
	if err != nil {
		h.Unavailable = err.Error()
		return h
	}
	defer closeFn()
	evs, err := containerEvents(ctx, js, cfg.EventsStream, name)
	if err != nil {
		h.Unavailable = err.Error()
		return h
	}
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		switch e.Kind() {
		case events.RestartRequested, events.RestartSkipped, events.GaveUp:
			h.Latest = &CheckLatest{Kind: e.Kind(), Time: e.Time, Reason: e.Data.Reason, Attempt: e.Data.Attempt,
				FrameRestarts: e.Data.FrameRestarts, GaveUp: e.Kind() == events.GaveUp, RetryAt: e.Data.RetryAt}
		}
		if h.Latest != nil {
			break
		}
	}
	st := heal.FoldAll(evs)
	h.State = &st
	if len(evs) > historyShown {
		evs = evs[len(evs)-historyShown:]
	}
	h.Events = evs
	return h
}

// containerEvents reads every stored event of one container, oldest first.
func containerEvents(ctx context.Context, js jetstream.JetStream, stream, name string) ([]events.Event, error) {
	filter := events.SubjectRoot + ".*." + events.SanitizeToken(name) + ".>"
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("read the events stream %s: %w", stream, err)
	}
	var out []events.Event
	for {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := c.Next(jetstream.FetchContext(nctx))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded):
			return out, nil
		case err != nil:
			return out, fmt.Errorf("read the events stream: %w", err)
		}
		if e, err := events.Unmarshal(m.Data()); err == nil && e.Subject == name {
			out = append(out, e)
		}
		if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
			return out, nil
		}
	}
}

func printCheck(w io.Writer, r CheckReport, one bool) {
	ok := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	fmt.Fprintf(w, "config:   ok (container_label=%s", r.Config.ContainerLabel)
	if r.Config.Namespace != "" {
		fmt.Fprintf(w, ", namespace=%s", r.Config.Namespace)
	}
	fmt.Fprintf(w, ", %d notify targets)\n", r.Config.NotifyTargets)
	for _, wn := range r.Config.Warnings {
		fmt.Fprintf(w, "          warning: %s\n", oneLine(wn))
	}
	if r.Docker.Error != "" {
		fmt.Fprintf(w, "docker:   FAILED: %s\n", oneLine(r.Docker.Error))
	} else {
		fmt.Fprintf(w, "docker:   ok: %s at %s, Docker %s, API %s (negotiated)\n", r.Docker.Name, r.Docker.Host, r.Docker.Version, r.Docker.APIVersion)
	}
	dd := r.DataDir
	switch {
	case dd.Error != "":
		fmt.Fprintf(w, "data dir: FAILED: %s: %s\n", dd.Path, dd.Error)
	case !dd.Exists:
		fmt.Fprintf(w, "data dir: ok: %s does not exist yet; the healer creates it\n", dd.Path)
	default:
		fmt.Fprintf(w, "data dir: ok: %s exists, writable, %s\n", dd.Path, ok(dd.Locked, "locked by a running healer (pid "+dd.PID+")", "not locked (no healer running on it)"))
	}
	fmt.Fprintln(w)
	if one {
		for _, c := range r.Containers {
			printContainer(w, c)
		}
		if r.History != nil {
			printHistory(w, *r.History)
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tSELECTED\tWHY\tHEALTH\tLABELS\tWARNINGS")
		for _, c := range r.Containers {
			health := c.Health
			if !c.Healthcheck {
				health = "no healthcheck"
			} else if health == "" {
				health = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.State, ok(c.Selected, "yes", "no"), oneLine(c.Why), health,
				labelsText(c.Labels), oneLine(strings.Join(c.Warnings, "; ")))
		}
		_ = tw.Flush()
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", oneLine(p))
	}
}

func labelsText(ls []config.AppliedLabel) string {
	var parts []string
	for _, l := range ls {
		if l.Error == "" {
			parts = append(parts, l.Key+"="+oneLine(l.Value))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func printContainer(w io.Writer, c CheckContainer) {
	fmt.Fprintf(w, "container: %s (%s), image %s, %s\n", c.Name, c.ID, oneLine(c.Image), c.State)
	fmt.Fprintf(w, "selected:  %v: %s\n", c.Selected, oneLine(c.Why))
	if c.Healthcheck {
		fmt.Fprintf(w, "health:    %s\n", c.Health)
	} else {
		fmt.Fprintf(w, "health:    no HEALTHCHECK\n")
	}
	if c.Policy != nil {
		keys := make([]string, 0, len(c.Policy))
		for k := range c.Policy {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		from := map[string]string{}
		for _, l := range c.Labels {
			if l.Error == "" {
				from[l.Key] = l.Label
			}
		}
		fmt.Fprintln(w, "policy:")
		for _, k := range keys {
			src := ""
			if l, ok := from[k]; ok {
				src = "  (label " + l + ")"
			}
			fmt.Fprintf(w, "  %-28s %s%s\n", k, c.Policy[k], src)
		}
	}
	for _, wn := range c.Warnings {
		fmt.Fprintf(w, "warning:   %s\n", oneLine(wn))
	}
}

func printHistory(w io.Writer, h CheckHistory) {
	fmt.Fprintln(w)
	if h.Unavailable != "" {
		fmt.Fprintf(w, "history:   unavailable: %s\n", oneLine(h.Unavailable))
		return
	}
	fmt.Fprintf(w, "history:   %d latest events (from the %s)\n", len(h.Events), h.Source)
	for _, e := range h.Events {
		fmt.Fprintf(w, "  %s  %-32s %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Kind(), oneLine(details(e.Data)))
	}
	if s := h.State; s != nil {
		fmt.Fprintf(w, "state:     attempt %d, %d restarts in the frame", s.Attempt, s.FrameRestarts)
		if !s.FrameStart.IsZero() {
			fmt.Fprintf(w, " started %s", s.FrameStart.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintf(w, ", given up: %v, stopped by a user: %v", s.GaveUp, s.UserStopped)
		if s.Failures > 0 {
			fmt.Fprintf(w, ", %d failed restarts (last: %s)", s.Failures, oneLine(s.LastError))
		}
		if s.LeftAlone != "" {
			fmt.Fprintf(w, ", left alone: %s", oneLine(s.LeftAlone))
		}
		if s.PausedAt(time.Now()) {
			if s.PausedUntil.IsZero() {
				fmt.Fprint(w, ", paused (healer pause) until resumed")
			} else {
				fmt.Fprintf(w, ", paused (healer pause) until %s", s.PausedUntil.Local().Format("2006-01-02 15:04:05"))
			}
		}
		fmt.Fprintln(w)
	}
	if n := h.Next; n != nil {
		fmt.Fprintf(w, "if it turned unhealthy now: %s", n.Verdict)
		if n.Reason != "" {
			fmt.Fprintf(w, " (%s)", oneLine(n.Reason))
		}
		if n.At != nil {
			fmt.Fprintf(w, "; restarted at %s at the earliest", n.At.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintln(w)
	}
	l := h.Latest
	if l == nil {
		fmt.Fprintln(w, "decisions: none recorded")
		return
	}
	fmt.Fprintf(w, "latest decision: %s at %s", l.Kind, l.Time.Local().Format("2006-01-02 15:04:05"))
	if l.Reason != "" {
		fmt.Fprintf(w, " (%s)", oneLine(l.Reason))
	}
	fmt.Fprintf(w, ": attempt %d, %d restarts in its frame, given up: %v", l.Attempt, l.FrameRestarts, l.GaveUp)
	if l.RetryAt != nil {
		fmt.Fprintf(w, ", looked at again at %s", l.RetryAt.Local().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintln(w)
}
