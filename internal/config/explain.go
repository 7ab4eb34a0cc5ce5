package config

import (
	"strconv"
	"strings"
)

// AppliedLabel is one override label found on a container: the setting it
// is for, its value, and why the value was not used (empty when it was).
type AppliedLabel struct {
	Label string `json:"label"`
	Key   string `json:"key"`
	Value string `json:"value"`
	Error string `json:"error,omitempty"`
}

// Applied lists the override labels on a container in the order Policy
// reads them, for explaining a container's effective policy. A
// notify_url's value, which may hold a token, is shown as [redacted].
func (o *Overrides) Applied(labels map[string]string) []AppliedLabel {
	var out []AppliedLabel
	for _, s := range o.ss {
		name, v, ok := o.label(s, labels)
		if !ok {
			continue
		}
		a := AppliedLabel{Label: name, Key: s.key, Value: v}
		var c Config
		if err := s.set(&c, v); err != nil {
			a.Error = "expected " + err.Error()
		}
		out = append(out, a)
	}
	if name, v, ok := o.lookup(labels, "notify_url"); ok {
		a := AppliedLabel{Label: name, Key: "notify_url", Value: "[redacted]"}
		if err := CheckNotifyURL(strings.TrimSpace(v)); err != nil {
			a.Error = "expected a notification URL: " + err.Error()
		}
		out = append(out, a)
	}
	if name, v, ok := o.lookup(labels, "notify_level"); ok {
		a := AppliedLabel{Label: name, Key: "notify_level", Value: v}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "debug", "info", "warning":
		default:
			a.Error = "expected one of debug, info, warning"
		}
		out = append(out, a)
	}
	return out
}

// Values is the policy as key=value text, keyed like the settings, for
// `healer check`.
func (p Policy) Values() map[string]string {
	d := func(v interface{ String() string }) string { return v.String() }
	b := strconv.FormatBool
	n := strconv.Itoa
	v := map[string]string{
		"stop_timeout":               d(p.StopTimeout),
		"seconds_between_restarts":   d(p.BetweenRestarts),
		"frame_size":                 d(p.FrameSize),
		"max_restarts_in_frame":      n(p.MaxRestartsInFrame),
		"seconds_between_next_frame": d(p.BetweenFrames),
		"max_checks_to_give_up":      n(p.GiveUpAfterRestarts),
		"backoff":                    p.Backoff,
		"start_grace":                d(p.StartGrace),
		"heal_exited":                b(p.HealExited),
		"heal_exit_zero":             b(p.HealExitZero),
		"restart_dependents":         b(p.RestartDependents),
		"max_historic_entries":       n(p.MaxHistoricEntries),
		"clean_duplicates":           b(p.CleanDuplicates),
		"notify_log_lines":           n(p.NotifyLogLines),
		"action":                     p.Effective(),
	}
	if p.DryRun {
		v["dry_run"] = "true"
	}
	if p.Backoff == BackoffExponential {
		v["backoff_initial"], v["backoff_max"], v["backoff_reset"] = d(p.BackoffInitial), d(p.BackoffMax), d(p.BackoffReset)
	}
	if p.NotifyURL != "" {
		v["notify_url"] = "[redacted]"
	}
	if p.NotifyLevel != "" {
		v["notify_level"] = p.NotifyLevel
	}
	return v
}

// SelectedBy says which label selects a container, or why none does:
// "<label>=true", "autoheal=true", "container_label=all", "<label>=false",
// or "no label <label>=true".
func SelectedBy(labels map[string]string, label string) (bool, string) {
	name := LabelPrefix(label)
	if v, ok := labels[name]; ok {
		b, valid := ParseBool(v)
		if valid && b || (label == "all" && !(valid && !b)) {
			return true, name + "=" + v
		}
		return false, name + "=" + v
	}
	for _, a := range aliasesFor(label) {
		if v, ok := labels[a]; ok {
			if b, valid := ParseBool(v); valid {
				return b, a + "=" + v
			}
		}
	}
	if label == "all" {
		return true, "container_label=all"
	}
	return false, "no label " + name + "=true"
}
