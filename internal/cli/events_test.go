package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Outside text in an event cannot drive the terminal of `healer events`.
func TestEventsTextStripsControlCharacters(t *testing.T) {
	t.Parallel()
	hostile := "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\x9b1m\u202eevil"
	e := events.New(events.ConfigError, "1", time.Now(), "web", events.Data{Host: "h\x1b[1m", Label: "healme", Value: hostile, Error: hostile, Output: hostile})
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printer{w: &out}.print(b)
	text := strings.TrimSuffix(out.String(), "\n")
	for _, r := range text {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
			t.Fatalf("control character %U in %q", r, text)
		}
	}
	if !strings.Contains(text, "red") || !strings.Contains(text, "evil") {
		t.Errorf("the text itself is gone: %q", text)
	}
}
