package notify

import (
	"fmt"
	"text/template"
	"unicode/utf8"

	"github.com/healmydocker/healmydocker/internal/events"
)

// maxMessage bounds one message's text in bytes: under Mattermost's 16,383
// characters and Slack's 40,000, so that a storm with log tails is told in
// several messages rather than refused (or cut by the service) as one.
const maxMessage = 15_000

// split is the sizing stage: the messages for evs, in order, each at most
// limit bytes, an event never split across two. An event too long alone is
// cut, and says so. err is the first render error (its part is told by the
// events' kinds instead, as compose does).
func split(t *template.Template, evs []events.Event, esc Escape, limit int) (texts []string, err error) {
	if len(evs) == 0 {
		return nil, nil
	}
	text, err := compose(t, evs, esc)
	if len(text) <= limit || len(evs) == 1 {
		return []string{cut(text, limit)}, err
	}
	// Halves until each fits: a template's own text (a header, a footer)
	// is in every part, so sizes are measured, not added up.
	mid := len(evs) / 2
	first, err1 := split(t, evs[:mid], esc, limit)
	rest, err2 := split(t, evs[mid:], esc, limit)
	if err1 == nil {
		err1 = err2
	}
	return append(first, rest...), err1
}

// cut bounds text to limit bytes on a rune boundary, saying it was cut.
func cut(text string, limit int) string {
	if len(text) <= limit {
		return text
	}
	note := fmt.Sprintf("\n… (cut: %d more bytes)", len(text)-limit)
	end := max(limit-len(note), 0)
	for end > 0 && !utf8.RuneStart(text[end]) {
		end--
	}
	return text[:end] + note
}
