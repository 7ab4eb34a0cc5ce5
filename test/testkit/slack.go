package testkit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/test/waitlog"
)

// SlackText reads a Slack incoming-webhook request (a JSON body with a
// non-empty "text", sent as application/json) and returns its text; the
// error says how the request is not one.
func SlackText(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return "", fmt.Errorf("read the webhook body: %w", err)
	}
	var body struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Text == "" || r.Header.Get("Content-Type") != "application/json" {
		return body.Text, fmt.Errorf("not a Slack incoming-webhook request: %s %s", r.Header.Get("Content-Type"), b)
	}
	return body.Text, nil
}

// Slack is a real Slack-format webhook receiver on loopback: it fails the
// test on a request that is not Slack's format and keeps each message's
// text in Texts, to wait on.
type Slack struct {
	*httptest.Server
	Texts *waitlog.Log[string]
}

// NewSlack starts a receiver that closes when t ends.
func NewSlack(t testing.TB) *Slack {
	t.Helper()
	s := &Slack{Texts: waitlog.New[string]()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text, err := SlackText(r)
		if err != nil {
			t.Errorf("%v", err)
		}
		s.Texts.Add(text)
	}))
	t.Cleanup(s.Close)
	return s
}

// All returns every text received so far, in order.
func (s *Slack) All() []string { return s.Texts.All(func(string) bool { return true }) }

// Joined is All as one string, a line a message.
func (s *Slack) Joined() string { return strings.Join(s.All(), "\n") }

// WaitText returns the first message that contains part, waiting up to d.
func (s *Slack) WaitText(d time.Duration, part string) (string, bool) {
	return s.Texts.WaitNth(d, 1, func(text string) bool { return strings.Contains(text, part) })
}
