package config

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultLabel is the label name when none is configured, and the one whose
// =false and overrides apply when container_label is "all".
const DefaultLabel = "healme"

// Repairman is the label prefix of Repairman's per-container settings.
const Repairman = "org.riotkit.repairman."

// selectAliases are other healers' selection labels, accepted so users
// can switch without relabelling: willfarrell autoheal's and Repairman's.
var selectAliases = [...]string{"autoheal", Repairman + "enable_autoheal"}

// Selected reports whether a container with these labels is to be healed.
// label=all selects every container; <name>=false always excludes one. Our
// label decides when present; else the aliases do, but only when the
// operator kept the default label (or chose an alias): a custom label is a
// choice of exactly that label.
func Selected(labels map[string]string, label string) bool {
	if v, ok := labels[LabelPrefix(label)]; ok {
		b, valid := ParseBool(v)
		return valid && b || (label == "all" && !(valid && !b))
	}
	for _, a := range aliasesFor(label) {
		if v, ok := labels[a]; ok {
			if b, valid := ParseBool(v); valid {
				return b
			}
		}
	}
	return label == "all"
}

// aliasesFor is the other healers' labels that select under label.
func aliasesFor(label string) []string {
	if label == DefaultLabel || label == "all" || slices.Contains(selectAliases[:], label) {
		return selectAliases[:]
	}
	return nil
}

// SelectionErrors reports the selection labels of a container whose value
// is not a boolean: they select nothing, and the operator is told so.
func SelectionErrors(labels map[string]string, label string) []LabelError {
	var errs []LabelError
	for _, name := range append([]string{LabelPrefix(label)}, aliasesFor(label)...) {
		if v, ok := labels[name]; ok {
			if _, valid := ParseBool(v); !valid {
				errs = append(errs, LabelError{Label: name, Value: v, Expected: boolExpected + "; the label is ignored"})
			}
		}
	}
	return errs
}

const boolExpected = "true or false (also 1/0, yes/no, on/off)"

// ParseBool reads true/false, 1/0, yes/no, on/off (and t/f) in any case.
func ParseBool(v string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on", "t":
		return true, true
	case "false", "0", "no", "off", "f":
		return false, true
	}
	return false, false
}

// InNamespace reports whether a container name has the namespace prefix.
func InNamespace(name, namespace string) bool {
	return strings.HasPrefix(strings.TrimPrefix(name, "/"), namespace)
}

// LabelPrefix is the label whose value selects a container, and the prefix
// of its per-container overrides.
func LabelPrefix(label string) string {
	if label == "all" {
		return DefaultLabel
	}
	return label
}

// LabelError is an override label whose value could not be used.
type LabelError struct {
	Label    string
	Value    string
	Expected string
}

// Overrides reads per-container settings from labels. Build it once: it
// holds the table of settings that labels may override.
type Overrides struct {
	prefix string
	ss     []setting
}

// NewOverrides returns the label reader for the selection label.
func NewOverrides(label string) *Overrides {
	o := &Overrides{prefix: LabelPrefix(label) + "."}
	for _, s := range settings() {
		if s.perContainer {
			o.ss = append(o.ss, s)
		}
	}
	return o
}

// PolicyFor applies the override labels <label>.<key> of one container to
// base. A bad value keeps the base value for that key and is reported.
func PolicyFor(base Policy, labels map[string]string, label string) (Policy, []LabelError) {
	return NewOverrides(label).Policy(base, labels)
}

// label finds setting s among a container's labels: ours first, then the
// other healers' names for it.
func (o *Overrides) label(s setting, labels map[string]string) (name, value string, ok bool) {
	name = o.prefix + s.key
	if value, ok = labels[name]; ok {
		return name, value, true
	}
	for _, a := range s.labelAliases {
		if value, ok = labels[a]; ok {
			return a, value, true
		}
	}
	return "", "", false
}

// Policy applies a container's override labels to base; see PolicyFor.
func (o *Overrides) Policy(base Policy, labels map[string]string) (Policy, []LabelError) {
	var errs []LabelError
	c := Config{Policy: base}
	for _, s := range o.ss {
		name, v, ok := o.label(s, labels)
		if !ok {
			continue
		}
		before := c
		if err := s.set(&c, v); err != nil {
			c = before
			errs = append(errs, LabelError{Label: name, Value: v, Expected: err.Error()})
			continue
		}
		switch s.key {
		case "stop_timeout":
			c.Policy.StopTimeoutFromLabel = true
		case "heal_exited":
			c.Policy.HealExitedSet = true
		}
	}
	p := c.Policy
	if p.MaxHistoricEntries > MaxLabelHistoricEntries && p.MaxHistoricEntries != base.MaxHistoricEntries {
		// History is kept under one lock; a label must not make it O(n).
		name, v, _ := o.lookup(labels, "max_historic_entries")
		errs = append(errs, LabelError{Label: name, Value: v, Expected: fmt.Sprintf("at most %d from a label; %d is used", MaxLabelHistoricEntries, MaxLabelHistoricEntries)})
		p.MaxHistoricEntries = MaxLabelHistoricEntries
	}
	var nerrs []LabelError
	p.NotifyURL, p.NotifyLevel, nerrs = o.notify(base, labels)
	return p, append(errs, nerrs...)
}

// Notify is the container's own notify URL and level as Policy takes them
// ("" for none or a refused value): two label lookups, for the routes
// recorded on every event, where the whole Policy would be the dearer path.
func (o *Overrides) Notify(base Policy, labels map[string]string) (url, level string) {
	url, level, _ = o.notify(base, labels)
	return url, level
}

// notify reads the notify_url and notify_level labels; a bad value is
// reported and base's kept.
func (o *Overrides) notify(base Policy, labels map[string]string) (url, level string, errs []LabelError) {
	url, level = base.NotifyURL, base.NotifyLevel
	if name, v, ok := o.lookup(labels, "notify_url"); ok {
		v = strings.TrimSpace(v)
		// The value may hold a token: it is never repeated.
		if err := CheckNotifyURL(v); err != nil {
			errs = append(errs, LabelError{Label: name, Value: "[redacted]", Expected: "a notification URL: " + err.Error()})
		} else if err := LabelTargetAllowed(base.NotifyLabelTargets, v); err != nil {
			errs = append(errs, LabelError{Label: name, Value: "[redacted]", Expected: err.Error()})
		} else {
			url = v
		}
	}
	if name, v, ok := o.lookup(labels, "notify_level"); ok {
		switch l := strings.ToLower(strings.TrimSpace(v)); l {
		case "debug", "info", "warning":
			level = l
		default:
			errs = append(errs, LabelError{Label: name, Value: v, Expected: "one of debug, info, warning"})
		}
	}
	return url, level, errs
}

// lookup finds <label>.<key>, else Repairman's label for key.
func (o *Overrides) lookup(labels map[string]string, key string) (string, string, bool) {
	for _, name := range [...]string{o.prefix + key, Repairman + key} {
		if v, ok := labels[name]; ok {
			return name, v, true
		}
	}
	return "", "", false
}

// MaxLabelHistoricEntries caps max_historic_entries set by a label.
const MaxLabelHistoricEntries = 1000
