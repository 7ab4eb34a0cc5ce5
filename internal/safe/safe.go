// Package safe keeps one bad input from taking a whole process down: a
// goroutine that handles outside input (labels, probe output, messages
// from the bus, HTTP requests) runs its work through Call, which turns a
// panic into a log line naming the input, a healer.panic event, and an
// error the caller can act on.
package safe

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Publisher records events; it must not block.
type Publisher interface {
	Publish(events.Event)
}

// Guard reports recovered panics. A nil Guard, or one with nil fields,
// still recovers; it only reports less.
type Guard struct {
	Log  *slog.Logger
	Pub  Publisher
	Host string
}

// PanicError is a recovered panic.
type PanicError struct {
	Where string
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("%s: panic: %v", e.Where, e.Value) }

// maxInput bounds how much of an input is logged.
const maxInput = 512

// Call runs f. If f panics, the panic is logged with where and input (a
// description of what f was handling, bounded), published as a
// healer.panic event, and returned as a *PanicError; otherwise Call
// returns nil. input is evaluated only after a panic.
func (g *Guard) Call(where string, input func() string, f func()) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		err = &PanicError{Where: where, Value: v}
		in := ""
		if input != nil {
			in = Bound(describe(input), maxInput)
		}
		if g == nil {
			return
		}
		if g.Log != nil {
			g.Log.Error("recovered from a panic; the input was dropped and work goes on",
				"where", where, "panic", Bound(fmt.Sprint(v), maxInput), "input", in, "stack", string(debug.Stack()))
		}
		if g.Pub != nil {
			g.Pub.Publish(events.New(events.HealerPanic, uuid.NewString(), time.Now(), "", events.Data{
				Host: g.Host, Reason: where, Error: Bound(fmt.Sprint(v), maxInput),
			}))
		}
	}()
	f()
	return nil
}

// describe runs input, which may itself panic on the bad value.
func describe(input func() string) (s string) {
	defer func() {
		if recover() != nil {
			s = "(the input could not be described)"
		}
	}()
	return input()
}

// Bound makes s valid UTF-8 and at most n bytes (plus an ellipsis).
func Bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
