package cli

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/events"
)

type listFunc func(context.Context) ([]events.Container, error)

func (f listFunc) List(ctx context.Context) ([]events.Container, error) { return f(ctx) }

func TestNotifyTargets(t *testing.T) {
	t.Parallel()
	cfg := config.Config{ContainerLabel: "x", NotifyURL: "https://a.example/1, https://a.example/1 https://b.example/2"}
	cts := []events.Container{
		{Name: "web", Running: true, Labels: map[string]string{"x": "true", "x.notify_url": "https://c.example/3"}},
		{Name: "api", Running: true, Labels: map[string]string{"x": "true", "x.notify_url": "https://c.example/3"}},
		{Name: "db", Running: true, Labels: map[string]string{"x": "true", "x.notify_url": "https://b.example/2"}},
		{Name: "off", Running: true, Labels: map[string]string{"x": "false", "x.notify_url": "https://d.example/4"}},
		{Name: "gone", Running: false, Labels: map[string]string{"x": "true", "x.notify_url": "https://e.example/5"}},
		{Name: "bad", Running: true, Labels: map[string]string{"x": "true", "x.notify_url": "not a url"}},
	}
	got, err := NotifyTargets(context.Background(), cfg, listFunc(func(context.Context) ([]events.Container, error) { return cts, nil }))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[3].Err == nil || !strings.Contains(got[3].Err.Error(), "x.notify_url") || got[3].From != "container bad" {
		t.Fatalf("targets: %+v", got)
	}
	want := []NotifyTarget{
		{URL: "https://a.example/1", From: "settings"},
		{URL: "https://b.example/2", From: "settings"},
		{URL: "https://c.example/3", From: "container api, web"},
	}
	if !reflect.DeepEqual(got[:3], want) {
		t.Errorf("targets:\n got %+v\nwant %+v", got[:3], want)
	}

	boom := errors.New("boom")
	got, err = NotifyTargets(context.Background(), cfg, listFunc(func(context.Context) ([]events.Container, error) { return nil, boom }))
	if !errors.Is(err, boom) || len(got) != 2 {
		t.Errorf("a failed list keeps the settings' targets and says so: %+v %v", got, err)
	}
}
