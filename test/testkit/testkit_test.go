package testkit

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPollReturnsTheLastValueSeen(t *testing.T) {
	n := 0
	if v, ok := Poll(time.Second, func() (int, bool) { n++; return n, n == 3 }); !ok || v != 3 {
		t.Errorf("Poll = %d, %v; want 3, true", v, ok)
	}
	start := time.Now()
	v, ok := Poll(50*time.Millisecond, func() (string, bool) { return "still waiting", false })
	if ok || v != "still waiting" {
		t.Errorf("Poll past its deadline = %q, %v; want the last value, false", v, ok)
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
		t.Errorf("Poll of 50ms took %s", took)
	}
}

func TestSlackTextChecksTheFormat(t *testing.T) {
	for _, tc := range []struct {
		body, contentType, text string
		ok                      bool
	}{
		{`{"text":"web: restarted"}`, "application/json", "web: restarted", true},
		{`{"text":""}`, "application/json", "", false},
		{`{"text":"x"}`, "text/plain", "x", false},
		{`text=x`, "application/json", "", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/x", bytes.NewBufferString(tc.body))
		r.Header.Set("Content-Type", tc.contentType)
		text, err := SlackText(r)
		if text != tc.text || (err == nil) != tc.ok {
			t.Errorf("%s %s: %q, %v; want %q, ok %v", tc.contentType, tc.body, text, err, tc.text, tc.ok)
		}
	}
}

func TestSlackKeepsTheTexts(t *testing.T) {
	s := NewSlack(t)
	for _, text := range []string{"a: restarted", "b: restarted"} {
		resp, err := http.Post(s.URL+"/hooks/x", "application/json", strings.NewReader(`{"text":"`+text+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got, ok := s.WaitText(time.Second, "b:"); !ok || got != "b: restarted" {
		t.Errorf("WaitText = %q, %v", got, ok)
	}
	if got := s.Joined(); got != "a: restarted\nb: restarted" {
		t.Errorf("Joined = %q", got)
	}
}
