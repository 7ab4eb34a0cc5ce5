package safe

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/healmydocker/healmydocker/internal/events"
)

type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Publish(e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func TestCallRecoversLogsAndPublishes(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	pub := &recorder{}
	g := &Guard{Log: slog.New(slog.NewTextHandler(&logs, nil)), Pub: pub, Host: "h1"}
	err := g.Call("notify runner", func() string { return "subject hmd.h1.web.x \xff" }, func() {
		panic("invalid label value")
	})
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Where != "notify runner" {
		t.Fatalf("Call = %v, want a PanicError from notify runner", err)
	}
	if !strings.Contains(logs.String(), "hmd.h1.web.x") || !strings.Contains(logs.String(), "invalid label value") {
		t.Errorf("log does not name the input and the panic:\n%s", logs.String())
	}
	if len(pub.evs) != 1 {
		t.Fatalf("published %d events, want 1", len(pub.evs))
	}
	e := pub.evs[0]
	if e.Kind() != events.HealerPanic || e.Data.Host != "h1" || e.Data.Reason != "notify runner" || e.Data.Error != "invalid label value" {
		t.Errorf("event = %+v", e)
	}
}

func TestCallPassesThrough(t *testing.T) {
	t.Parallel()
	ran := false
	if err := (*Guard)(nil).Call("x", nil, func() { ran = true }); err != nil || !ran {
		t.Fatalf("Call = %v, ran = %v", err, ran)
	}
	// A nil guard still recovers.
	if err := (*Guard)(nil).Call("x", func() string { panic("input too") }, func() { panic(1) }); err == nil {
		t.Fatal("nil guard: panic not reported")
	}
}

func TestBound(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"héllo", 2, "h…"},
		{"a\xffb", 10, "a\uFFFDb"},
	} {
		got := Bound(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Bound(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
