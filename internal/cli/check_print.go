package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
)

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
