package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/nicholas-fedor/shoutrrr"
	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
	"github.com/nicholas-fedor/shoutrrr/pkg/util/jsonclient"

	"github.com/healmydocker/healmydocker/internal/config"
)

// Shoutrrr sends through the maintained Shoutrrr to the services it knows
// by URL: Discord, Telegram, ntfy, Gotify, Pushover, smtp, generic
// webhooks and more.
type Shoutrrr struct {
	name   string
	sender *router.ServiceRouter
	// secrets are the URL's parts that may be tokens, which Shoutrrr's
	// errors can quote ("invalid gotify token: ...").
	secrets []string
	escape  Escape
}

// Escape is the escape of the service's format.
func (s *Shoutrrr) Escape(text string) string { return s.escape(text) }

// NewShoutrrr returns a target for a Shoutrrr service URL.
func NewShoutrrr(rawURL string) (*Shoutrrr, error) {
	name := Redact(rawURL)
	s, err := shoutrrr.CreateSenderWithOptions(types.SenderOptions{}, rawURL)
	if err != nil {
		// Shoutrrr's errors may quote the URL.
		return nil, fmt.Errorf("notify url %s: not a service URL Shoutrrr knows", name)
	}
	esc := EscapePlain
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "slack" || u.Scheme == "mattermost" || u.Scheme == "rocketchat") {
		esc = EscapeSlack
	}
	return &Shoutrrr{name: name, sender: s, secrets: urlSecrets(rawURL), escape: esc}, nil
}

// Name is the target's redacted URL, for logs.
func (s *Shoutrrr) Name() string { return s.name }

// Notify sends text. A failure is retried unless the service refused the
// message (a 4xx other than 408 and 429), which sending again won't change.
func (s *Shoutrrr) Notify(ctx context.Context, text string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	var failed []string
	retry := false
	for _, err := range s.sender.Send(text, nil) {
		if err != nil {
			failed = append(failed, redactSecrets(redactErr(err), s.secrets))
			retry = retry || !Refused(err)
		}
	}
	if len(failed) > 0 {
		return retry, fmt.Errorf("notify %s: %w: %s", s.name, errSend, strings.Join(failed, "; "))
	}
	return false, nil
}

// statusInText finds an HTTP status in an error's words: Shoutrrr's
// services report it in their own formats ("401 Unauthorized",
// "HTTP 404", "Unauthorized (401)"), and only some as a typed error. A
// host:port has no space before the port, so it does not match.
var statusInText = regexp.MustCompile(`(?:^|[\s(])([45]\d\d)(?:[\s),:]|$)`)

// Refused reports whether err says the service refused the request
// itself: a 4xx other than 408 (timeout) and 429 (too many requests).
func Refused(err error) bool {
	var je jsonclient.Error
	if errors.As(err, &je) && je.StatusCode != 0 {
		return clientStatus(je.StatusCode)
	}
	m := statusInText.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	code, _ := strconv.Atoi(m[1])
	return clientStatus(code)
}

func clientStatus(code int) bool {
	return code >= 400 && code < 500 && code != 408 && code != 429
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
	if err := config.CheckNotifyURL(rawURL); err != nil {
		return nil, fmt.Errorf("notify url %s: %w", Redact(rawURL), err)
	}
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return NewWebhook(rawURL, username, "")
	}
	return NewShoutrrr(rawURL)
}

// urlSecrets are the parts of a service URL that may hold a token: the
// user info, each path segment, and each query value.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	add(u.User.Username())
	p, _ := u.User.Password()
	add(p)
	for _, seg := range strings.Split(u.Path, "/") {
		add(seg)
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	return out
}

// redactSecrets replaces every secret in msg with [redacted].
func redactSecrets(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}
