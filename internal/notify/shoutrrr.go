package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nicholas-fedor/shoutrrr"
	"github.com/nicholas-fedor/shoutrrr/pkg/router"
)

// Shoutrrr sends through the maintained Shoutrrr to the services it knows
// by URL: Discord, Telegram, ntfy, Gotify, Pushover, smtp, generic
// webhooks and more.
type Shoutrrr struct {
	name   string
	sender *router.ServiceRouter
}

// NewShoutrrr returns a target for a Shoutrrr service URL.
func NewShoutrrr(rawURL string) (*Shoutrrr, error) {
	name := Redact(rawURL)
	s, err := shoutrrr.CreateSender(rawURL)
	if err != nil {
		// Shoutrrr's errors may quote the URL.
		return nil, fmt.Errorf("notify url %s: not a service URL Shoutrrr knows", name)
	}
	return &Shoutrrr{name: name, sender: s}, nil
}

// Name is the target's redacted URL, for logs.
func (s *Shoutrrr) Name() string { return s.name }

// Notify sends text. Shoutrrr does not say whether a failure is the
// service's (5xx) or ours (4xx), so every failure is retried.
func (s *Shoutrrr) Notify(ctx context.Context, text string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	var failed []string
	for _, err := range s.sender.Send(text, nil) {
		if err != nil {
			failed = append(failed, redactErr(err))
		}
	}
	if len(failed) > 0 {
		return true, fmt.Errorf("notify %s: %w: %s", s.name, errSend, strings.Join(failed, "; "))
	}
	return false, nil
}

var errSend = errors.New("send failed")

// redactErr drops anything that looks like a URL from an error message.
func redactErr(err error) string {
	fields := strings.Fields(err.Error())
	for i, f := range fields {
		if u, perr := url.Parse(strings.Trim(f, `"',:`)); perr == nil && u.Scheme != "" && u.Host != "" {
			fields[i] = Redact(u.String())
		}
	}
	return strings.Join(fields, " ")
}

// NewTarget picks the target for a URL: http(s) incoming webhooks
// (Slack, Mattermost) directly, anything else through Shoutrrr.
func NewTarget(rawURL, username string) (Target, error) {
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return NewWebhook(rawURL, username, "")
	}
	return NewShoutrrr(rawURL)
}
