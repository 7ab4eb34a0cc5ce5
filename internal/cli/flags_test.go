package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/config"
)

func TestParseEventsArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want EventsOptions
		rest []string
		err  string
	}{
		{"none", nil, EventsOptions{}, []string{}, ""},
		{"all", []string{"-f", "--since", "1h", "--container=/web", "--hub", "-o", "json"},
			EventsOptions{Follow: true, Since: time.Hour, Container: "web", Hub: true, JSON: true}, []string{}, ""},
		{"seconds", []string{"--since=90"}, EventsOptions{Since: 90 * time.Second}, []string{}, ""},
		{"settings kept in order", []string{"--data-dir", "/d", "--follow", "--nats-url=nats://h:4222"},
			EventsOptions{Follow: true}, []string{"--data-dir", "/d", "--nats-url=nats://h:4222"}, ""},
		{"bad since", []string{"--since", "soon"}, EventsOptions{}, nil, "expected a duration such as 1h or 30m"},
		{"negative since", []string{"--since", "-1h"}, EventsOptions{}, nil, "expected a duration"},
		{"bad output", []string{"-o", "yaml"}, EventsOptions{}, nil, "expected table or json"},
		{"value missing", []string{"--container"}, EventsOptions{}, nil, "needs an argument"},
		{"help", []string{"--help"}, EventsOptions{}, nil, config.ErrHelp.Error()},
	} {
		got, rest, err := ParseEventsArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("%s: %+v %q %v; want %+v %q", tc.name, got, rest, err, tc.want, tc.rest)
		}
	}
}

func TestParseTestNotifyAndUIArgs(t *testing.T) {
	t.Parallel()
	o, rest, err := ParseTestNotifyArgs([]string{"--container-label", "x", "--url", " https://a.example/1 "})
	if err != nil || o.URL != "https://a.example/1" || !reflect.DeepEqual(rest, []string{"--container-label", "x"}) {
		t.Errorf("test-notify: %+v %q %v", o, rest, err)
	}
	if _, _, err := ParseTestNotifyArgs([]string{"--url= "}); err == nil || err.Error() != "--url is empty" {
		t.Errorf("empty --url: %v", err)
	}
	u, rest, err := ParseUIArgs([]string{"--nats-url", "nats://hub:4222", "--hub"})
	if err != nil || !u.Hub || !reflect.DeepEqual(rest, []string{"--nats-url", "nats://hub:4222"}) {
		t.Errorf("ui: %+v %q %v", u, rest, err)
	}
}
