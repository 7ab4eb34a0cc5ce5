package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultLabel is the label name when none is configured, and the one whose
// =false and overrides apply when container_label is "all".
const DefaultLabel = "healme"

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
	if name, v, ok := o.lookup(labels, "notify_url"); ok {
		v = strings.TrimSpace(v)
		// The value may hold a token: it is never repeated.
		if err := CheckNotifyURL(v); err != nil {
			errs = append(errs, LabelError{Label: name, Value: "[redacted]", Expected: "a notification URL: " + err.Error()})
		} else if err := LabelTargetAllowed(base.NotifyLabelTargets, v); err != nil {
			errs = append(errs, LabelError{Label: name, Value: "[redacted]", Expected: err.Error()})
		} else {
			p.NotifyURL = v
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

// NotifyURL is the container's own notify URL as Policy would take it, ""
// if it names none or a refused one; it is cheap for the containers
// without a notify_url label.
func (o *Overrides) NotifyURL(base Policy, labels map[string]string) string {
	if _, _, ok := o.lookup(labels, "notify_url"); !ok {
		return ""
	}
	p, _ := o.Policy(base, labels)
	return p.NotifyURL
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

// webhookSchemes are posted to directly; other schemes go to Shoutrrr.
var webhookSchemes = []string{"http", "https"}

// shoutrrrServices are the Shoutrrr services a notify URL may name; a
// scheme may add a transport after a plus (generic+https).
var shoutrrrServices = []string{
	"bark", "discord", "generic", "gotify", "googlechat", "hangouts", "ifttt", "join", "lark", "logger", "matrix",
	"mattermost", "notifiarr", "ntfy", "opsgenie", "pagerduty", "pushbullet", "pushover", "rocketchat", "signal",
	"slack", "smtp", "teams", "telegram", "wecom", "zulip",
}

// CheckNotifyURL checks that raw is a notify URL a target can be built from
// and whose parts can be logged and counted: valid UTF-8 throughout, a known
// scheme, a host that is a DNS name or an IP address, a numeric port, and
// no user info in a webhook URL (https://hooks.example@evil.example/ is
// not a hooks.example URL). The error never quotes raw.
func CheckNotifyURL(raw string) error {
	if !printable(raw) {
		return fmt.Errorf("not valid UTF-8 text, or holds control characters or spaces")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	base, _, _ := strings.Cut(scheme, "+")
	webhook := slices.Contains(webhookSchemes, scheme)
	if !webhook && !slices.Contains(shoutrrrServices, base) {
		return fmt.Errorf("scheme %q is not http, https or a Shoutrrr service", strconv.QuoteToASCII(scheme))
	}
	for _, part := range []string{u.Host, u.Path, u.Fragment, u.User.String()} {
		if !printable(part) {
			return fmt.Errorf("a part of the URL decodes to invalid UTF-8 or control characters")
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err != nil {
		return fmt.Errorf("the query is malformed")
	} else {
		for k, vs := range q {
			for _, v := range append(vs, k) {
				if !printable(v) {
					return fmt.Errorf("the query decodes to invalid UTF-8 or control characters")
				}
			}
		}
	}
	if webhook {
		if u.User != nil {
			return fmt.Errorf("user info in a webhook URL; the host is what follows the @")
		}
		if u.Host == "" {
			return fmt.Errorf("no host")
		}
	}
	if u.Host != "" && !validHost(u.Hostname()) {
		return fmt.Errorf("the host is not a DNS name or an IP address")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("the port is not a number from 1 to 65535")
		}
	}
	return nil
}

// printable: valid UTF-8, no control characters, no spaces.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// validHost: an IP address, or a DNS name of letters, digits, hyphens and
// underscores (Shoutrrr puts tokens there) in dot-separated labels.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// LabelTargetAllowed applies the operator's notify_label_targets to a
// notify URL from a label (already checked): empty allows any, "off" none,
// else an entry must name its scheme (gotify), its host (hooks.slack.com)
// or both (https://hooks.slack.com).
func LabelTargetAllowed(allow, raw string) error {
	allow = strings.TrimSpace(allow)
	if allow == "" {
		return nil
	}
	if strings.EqualFold(allow, "off") {
		return fmt.Errorf("no notify_url label: notify_label_targets is off; the default targets are used")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	for _, e := range strings.Split(allow, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e != "" && (e == scheme || e == host || e == scheme+"://"+host) {
			return nil
		}
	}
	return fmt.Errorf("a target that notify_label_targets allows (%s); the default targets are used", allow)
}
