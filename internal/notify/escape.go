package notify

import (
	"strings"
	"unicode"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Escape makes outside text (label values, probe output, container names,
// Docker's errors) safe to place in a target's message. Templates get
// events already escaped, so a user's template is as safe as ours.
type Escape func(string) string

// zwj after an @ keeps @channel, @here, @all and @everyone from mentioning
// anyone while the text still reads the same.
const zwj = "\u200d"

var slackReplacer = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	"@", "@"+zwj,
	// Markdown links and images ([a](b), ![a](b)): the parts must touch.
	"](", "]"+zwj+"(", "![", "!"+zwj+"[",
)

var plainReplacer = strings.NewReplacer("@", "@"+zwj, "](", "]"+zwj+"(", "![", "!"+zwj+"[")

// EscapeSlack is for Slack and Mattermost text: & < > as entities (no
// <!channel>, no <https://a|b> disguised links), mentions and markdown
// links broken up, control characters as spaces so no line can be forged.
func EscapeSlack(s string) string { return slackReplacer.Replace(clean(s)) }

// EscapePlain is for every other target: mentions and markdown links
// broken up (Discord and Teams read them), control characters as spaces.
func EscapePlain(s string) string { return plainReplacer.Replace(clean(s)) }

// clean makes s valid UTF-8, turns line breaks into spaces (no forged
// lines) and drops other control and bidi/format characters (a
// right-to-left override can make a line read backwards).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\u200d':
			return r
		case r == '\n', r == '\r', r == '\t', r == '\v', r == '\f', r == '\u0085', r == '\u2028', r == '\u2029':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, s)
}

// escapeEvent escapes every text field of e that can come from outside.
func escapeEvent(e events.Event, esc Escape) events.Event {
	e.Subject = esc(e.Subject)
	d := &e.Data
	for _, p := range []*string{
		&d.Host, &d.ContainerID, &d.Container, &d.Image, &d.Signal, &d.Cause, &d.Reason, &d.Error,
		&d.Label, &d.Value, &d.Expected, &d.Version, &d.Canonical, &d.Output, &d.NotifyTarget, &d.NotifyLevel, &d.Parent, &d.NewContainerID,
	} {
		*p = esc(*p)
	}
	// Log lines stay lines: logtail quotes each behind a bar.
	lines := strings.Split(d.LogTail, "\n")
	for i, l := range lines {
		lines[i] = esc(l)
	}
	d.LogTail = strings.Join(lines, "\n")
	return e
}

// escaper is implemented by targets that know their format.
type escaper interface {
	Escape(string) string
}

// EscapeFor is the escape of target t: its own, else EscapePlain.
func EscapeFor(t Target) Escape {
	if e, ok := t.(escaper); ok {
		return e.Escape
	}
	return EscapePlain
}
