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
