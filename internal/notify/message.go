package notify

import (
	"fmt"
	"strings"
	"text/template"

	"github.com/healmydocker/healmydocker/internal/events"
)

// DefaultTemplate renders a group of events, one line each.
const DefaultTemplate = `{{range .Events}}[{{.Data.Host}}] {{if .Subject}}{{.Subject}}: {{end}}{{what .}}{{if .Data.Reason}}{{if and .Data.Parent (ne (what .) "not restarted")}} because {{.Data.Reason}}{{else}} ({{.Data.Reason}}){{end}}{{end}}{{if .Data.FrameRestarts}}, restart {{.Data.FrameRestarts}} in this frame{{end}}{{if .Data.ExitCode}}, exit code {{deref .Data.ExitCode}}{{end}}{{if .Data.Error}}: {{.Data.Error}}{{end}}{{if .Data.Output}}; last probe said: {{oneline .Data.Output}}{{end}}
{{if .Data.LogTail}}{{logtail .Data.LogTail}}{{end}}{{end}}`

// Message is what a template gets.
type Message struct {
	Events []events.Event
}

// ParseTemplate parses a message template, with the helpers it may use.
func ParseTemplate(text string) (*template.Template, error) {
	t, err := template.New("message").Funcs(template.FuncMap{
		"what": what,
		"deref": func(p *int) int {
			if p == nil {
				return 0
			}
			return *p
		},
		"oneline": oneline,
		"logtail": logtail,
	}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("notify template: %w", err)
	}
	return t, nil
}

// Render renders the events with t, their outside text escaped with esc
// (nil: EscapePlain) first, so that no template can let it through raw.
// The result is valid UTF-8.
func Render(t *template.Template, evs []events.Event, esc Escape) (string, error) {
	if esc == nil {
		esc = EscapePlain
	}
	safe := make([]events.Event, len(evs))
	for i, e := range evs {
		safe[i] = escapeEvent(e, esc)
	}
	var b strings.Builder
	if err := t.Execute(&b, Message{Events: safe}); err != nil {
		return "", fmt.Errorf("render notification: %w", err)
	}
	return strings.ToValidUTF8(strings.TrimRight(b.String(), "\n"), "\uFFFD"), nil
}

// what says in words what an event is.
func what(e events.Event) string {
	switch e.Kind() {
	case events.RestartRequested:
		if e.Data.DryRun {
			return "would be restarted (dry run): not restarted"
		}
		return "needs a restart (action notify): not restarted"
	case events.Stopped:
		return "stopped (action stop): not restarted, left stopped"
	case events.RestartSucceeded:
		return "restarted"
	case events.RestartFailed:
		return "restart failed"
	case events.RestartSkipped:
		return "not restarted"
	case events.GaveUp:
		if e.Data.DryRun {
			return fmt.Sprintf("would give up after %d restarts (dry run): nothing was restarted", e.Data.Attempt)
		}
		return fmt.Sprintf("gave up after %d restarts", e.Data.Attempt)
	case events.ConfigError:
		// Not %q: it would spell the escapes out.
		return fmt.Sprintf("bad label %s=\"%s\", expected %s", e.Data.Label, e.Data.Value, e.Data.Expected)
	case events.DockerLost:
		return "lost the Docker daemon"
	case events.Degraded:
		return "event store failed, healing on without it: " + e.Data.Reason
	case events.DockerConnected:
		return "connected to the Docker daemon"
	case events.CleanupRemoved:
		return "removed duplicate of " + e.Data.Canonical
	case events.CleanupFailed:
		return "could not remove duplicate of " + e.Data.Canonical
	case events.CleanupKept:
		return "kept prefixed container"
	case events.Recreated:
		return "recreated as " + events.ShortID(e.Data.NewContainerID)
	case events.RecreateFailed:
		return "could not be recreated, left as it was"
	case events.HealerPanic:
		return "a bug in HealMyDocker was caught; what it was handling was dropped, and it goes on"
	}
	return string(e.Kind())
}

// oneline folds a probe's output onto one line and bounds it, so one
// chatty probe does not bury the rest of a message.
func oneline(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// Bounds of a log tail in a message: the event's own bound is in bytes,
// this keeps a message readable whatever an event carries.
const (
	logTailLines = 50
	logTailRunes = 300
)

// logtail renders a container's last log lines below its event's line,
// each indented behind a bar, so they read as a quote of the container
// and not as the healer's words. It ends with a newline.
func logtail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	var b strings.Builder
	for _, l := range lines {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return -1
			}
			return r
		}, l)
		if r := []rune(l); len(r) > logTailRunes {
			l = string(r[:logTailRunes]) + "…"
		}
		b.WriteString("    | ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
