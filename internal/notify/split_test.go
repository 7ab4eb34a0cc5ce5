package notify

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/healmydocker/healmydocker/internal/events"
)

// A group too long for one message is told in several, in order, each
// within the bound, no event split across two and none lost or repeated;
// an event too long alone is cut and says so.
func TestSplitKeepsEachMessageWithinTheBound(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	restart := func(i int, tail string) events.Event {
		return events.New(events.RestartSucceeded, fmt.Sprint(i), at, fmt.Sprintf("web-%02d", i), events.Data{Host: "h1", Reason: "health_status: unhealthy", LogTail: tail})
	}
	tail := strings.Repeat(strings.Repeat("é", 60)+"\n", 8) // about 1 KB rendered
	var storm []events.Event
	for i := range 30 {
		storm = append(storm, restart(i, tail))
	}
	for _, c := range []struct {
		name     string
		evs      []events.Event
		limit    int
		messages int // 0: more than one
	}{
		{"a short group is one message", storm[:2], 4000, 1},
		{"a storm is several", storm, 4000, 0},
		{"no events, no message", nil, 4000, -1},
	} {
		texts, err := split(tmpl, c.evs, EscapeSlack, c.limit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		switch {
		case c.messages == -1 && len(texts) != 0, c.messages > 0 && len(texts) != c.messages, c.messages == 0 && len(texts) < 2:
			t.Errorf("%s: %d messages", c.name, len(texts))
		}
		all := strings.Join(texts, "\n")
		for _, e := range c.evs {
			if n := strings.Count(all, e.Subject+": restarted"); n != 1 {
				t.Errorf("%s: %s told %d times", c.name, e.Subject, n)
			}
		}
		for i, text := range texts {
			if len(text) > c.limit || !utf8.ValidString(text) || strings.Contains(text, "(cut:") {
				t.Errorf("%s: message %d is %d bytes (bound %d), valid UTF-8 %v", c.name, i, len(text), c.limit, utf8.ValidString(text))
			}
		}
		// In order, across the messages.
		next := 0
		for _, line := range strings.Split(all, "\n") {
			var i int
			if _, err := fmt.Sscanf(line, "[h1] web-%02d: restarted", &i); err == nil {
				if i != next {
					t.Errorf("%s: web-%02d told where web-%02d was due", c.name, i, next)
				}
				next = i + 1
			}
		}
	}

	// One event longer than a message alone: cut, on a rune boundary.
	long := restart(99, strings.Repeat(strings.Repeat("é", 250)+"\n", 40))
	texts, _ := split(tmpl, []events.Event{long}, EscapePlain, 3000)
	if len(texts) != 1 || len(texts[0]) > 3000 || !utf8.ValidString(texts[0]) || !strings.Contains(texts[0], "web-99: restarted") || !strings.HasSuffix(texts[0], "more bytes)") {
		t.Errorf("a long event: %d messages, %d bytes, ends %q", len(texts), len(texts[0]), texts[0][max(0, len(texts[0])-40):])
	}
}
