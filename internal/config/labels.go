package config

import (
	"net/url"
	"strings"
)

// DefaultLabel is the label name when none is configured, and the one whose
// =false and overrides apply when container_label is "all".
const DefaultLabel = "healme"

// selectAliases are other healers' selection labels, accepted so users
// can switch without relabelling: willfarrell autoheal's and Repairman's.
var selectAliases = [...]string{"autoheal", Repairman + "enable_autoheal"}

// Selected reports whether a container with these labels is to be healed.
// label=all selects every container; <name>=false always excludes one. Our
// label decides when present; else the aliases do.
func Selected(labels map[string]string, label string) bool {
	if v, ok := labels[LabelPrefix(label)]; ok {
		return isTrue(v) || (label == "all" && !isFalse(v))
	}
	for _, a := range selectAliases {
		if v, ok := labels[a]; ok {
			if isFalse(v) {
				return false
			}
			if isTrue(v) {
				return true
			}
		}
	}
	return label == "all"
}

func isTrue(v string) bool  { return strings.EqualFold(strings.TrimSpace(v), "true") }
func isFalse(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "false") }

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

// Policy applies a container's override labels to base; see PolicyFor.
func (o *Overrides) Policy(base Policy, labels map[string]string) (Policy, []LabelError) {
	var errs []LabelError
	c := Config{Policy: base}
	for _, s := range o.ss {
		name := o.prefix + s.key
		v, ok := labels[name]
		for _, a := range s.labelAliases {
			if ok {
				break
			}
			name = a
			v, ok = labels[a]
		}
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
	if name, v, ok := o.lookup(labels, "notify_url"); ok {
		if validNotifyURL(v) {
			p.NotifyURL = strings.TrimSpace(v)
		} else {
			// The value may hold a token: it is not repeated.
			errs = append(errs, LabelError{Label: name, Value: "[redacted]", Expected: "a notification URL with a scheme (https://..., gotify://...)"})
		}
	}
	if name, v, ok := o.lookup(labels, "notify_level"); ok {
		switch l := strings.ToLower(strings.TrimSpace(v)); l {
		case "debug", "info", "warning":
			p.NotifyLevel = l
		default:
			errs = append(errs, LabelError{Label: name, Value: v, Expected: "one of debug, info, warning"})
		}
	}
	return p, errs
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

func validNotifyURL(v string) bool {
	u, err := url.Parse(strings.TrimSpace(v))
	return err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "")
}
