package bus

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// redactURL keeps credentials in a URL out of logs: in each URL of a
// comma-separated list (as nats.Connect takes them), everything between
// the scheme and the last "@" (the user info may hold an "@" itself), and
// all before the "@" of a URL without a scheme.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			start = j + 3
		}
		parts[i] = p[:start] + "[redacted]" + p[at:]
	}
	return strings.Join(parts, ",")
}

// withoutURL is err without the URL that url.Parse's error quotes whole,
// credentials and all; the caller names the URL redacted. A bad escape
// is not quoted either: it may be in the password.
func withoutURL(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	var esc url.EscapeError
	if errors.As(ue.Err, &esc) {
		return errors.New("invalid URL: a bad %-escape")
	}
	return fmt.Errorf("invalid URL: %w", ue.Err)
}
