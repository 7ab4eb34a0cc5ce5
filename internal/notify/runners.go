package notify

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Settings are the notifier's configuration, as read by either binary.
type Settings struct {
	// URLs holds one or more target URLs, separated by commas or spaces.
	URLs         string
	Level        string
	GroupWait    time.Duration
	Username     string
	TemplateFile string
}

// SplitURLs returns the target URLs in s.
func SplitURLs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Runners builds one runner per URL, keyed by its durable consumer name,
// reading the events stream named stream.
func Runners(s Settings, js jetstream.JetStream, stream, host string, pub Publisher, log *slog.Logger) (map[string]*Runner, error) {
	urls := SplitURLs(s.URLs)
	if len(urls) == 0 {
		return nil, nil
	}
	level, err := ParseLevel(s.Level)
	if err != nil {
		return nil, err
	}
	text := DefaultTemplate
	if s.TemplateFile != "" {
		b, err := os.ReadFile(s.TemplateFile)
		if err != nil {
			return nil, fmt.Errorf("notify template: %w", err)
		}
		text = string(b)
	}
	tmpl, err := ParseTemplate(text)
	if err != nil {
		return nil, err
	}
	runners := map[string]*Runner{}
	for _, u := range urls {
		target, err := NewTarget(u, s.Username)
		if err != nil {
			return nil, err
		}
		runners[ConsumerName(u)] = &Runner{
			JS: js, Stream: stream, Target: target, Level: level, Template: tmpl,
			GroupWait: s.GroupWait, MaxBackoff: 5 * time.Minute, Host: host, Publisher: pub, Log: log,
		}
		log.Info("notifying", "target", target.Name(), "level", s.Level)
	}
	return runners, nil
}
