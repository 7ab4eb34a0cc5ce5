package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook posts Slack- and Mattermost-style incoming-webhook JSON.
type Webhook struct {
	url      string
	username string
	iconURL  string
	client   *http.Client
}

// NewWebhook returns a target for an incoming-webhook URL. Mattermost also
// reads username and icon_url, which Slack ignores.
func NewWebhook(rawURL, username, iconURL string) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify url %s: expected an http(s) incoming-webhook URL", Redact(rawURL))
	}
	// A redirect is answered as given (a 3xx, refused), never followed: a
	// URL from a label must not lead the healer anywhere else.
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Webhook{url: rawURL, username: username, iconURL: iconURL, client: client}, nil
}

// Escape is for Slack and Mattermost text.
func (w *Webhook) Escape(s string) string { return EscapeSlack(s) }

// Name is the target's redacted URL, for logs.
func (w *Webhook) Name() string { return Redact(w.url) }

// Notify posts text. retry is true for failures worth retrying: timeouts,
// connection errors and 5xx; a 4xx will not get better.
func (w *Webhook) Notify(ctx context.Context, text string) (retry bool, err error) {
	body, err := json.Marshal(struct {
		Text     string `json:"text"`
		Username string `json:"username,omitempty"`
		IconURL  string `json:"icon_url,omitempty"`
	}{text, w.username, w.iconURL})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("notify %s: %w", w.Name(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		// The error text can hold the URL, token and all.
		return true, fmt.Errorf("notify %s: request failed", w.Name())
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	switch {
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("notify %s: %s: %s", w.Name(), resp.Status, bytes.TrimSpace(msg))
	case resp.StatusCode >= 300:
		return false, fmt.Errorf("notify %s: %s: %s", w.Name(), resp.Status, bytes.TrimSpace(msg))
	}
	return false, nil
}

// Redact keeps the scheme and host of a URL: webhook paths and query
// strings are the secret.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !utf8.ValidString(u.Host) || strings.ContainsAny(u.Host, "\x00\n\r") {
		return "[redacted]"
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}
