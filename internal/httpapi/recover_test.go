package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

type pubLog struct {
	mu  sync.Mutex
	evs []events.Event
}

func (p *pubLog) Publish(e events.Event) { p.mu.Lock(); p.evs = append(p.evs, e); p.mu.Unlock() }

// A handler that panics on a request answers 500, is reported as
// healer.panic with the request, and the server goes on serving.
func TestHandlerPanicIsRecovered(t *testing.T) {
	t.Parallel()
	pub := &pubLog{}
	s := New(Options{
		Status: func(_ context.Context, limit int) (any, error) {
			if limit == 7 {
				panic("bad limit")
			}
			return map[string]int{"limit": limit}, nil
		},
		Guard: &safe.Guard{Log: slog.New(slog.DiscardHandler), Pub: pub, Host: "h"},
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/?limit=7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("panicking handler: %s, want 500", resp.Status)
	}
	resp, err = http.Get(srv.URL + "/?limit=3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ReplaceAll(string(b), " ", ""), `"limit":3`) {
		t.Errorf("after the panic: %s %s", resp.Status, b)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.evs) != 1 || pub.evs[0].Kind() != events.HealerPanic || pub.evs[0].Data.Reason != "http handler" {
		t.Errorf("published %+v, want one healer.panic", pub.evs)
	}
}
