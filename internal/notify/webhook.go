package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
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
	return &Webhook{url: rawURL, username: username, iconURL: iconURL, client: &http.Client{Timeout: 10 * time.Second}}, nil
}

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
	if err != nil || u.Host == "" {
		return "[redacted]"
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}
