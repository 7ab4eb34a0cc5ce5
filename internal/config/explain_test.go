package config

import (
	"testing"
	"time"
)

func TestSelectedByAgreesWithSelected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		label  string
		want   bool
		why    string
	}{
		{"own label", map[string]string{"x": "true"}, "x", true, "x=true"},
		{"own label false", map[string]string{"x": "false"}, "x", false, "x=false"},
		{"none", map[string]string{}, "x", false, "no label x=true"},
		{"alias under a custom label", map[string]string{"autoheal": "true"}, "x", false, "no label x=true"},
		{"alias under the default label", map[string]string{"autoheal": "true"}, "healme", true, "autoheal=true"},
		{"all", map[string]string{}, "all", true, "container_label=all"},
		{"all but false", map[string]string{"healme": "false"}, "all", false, "healme=false"},
	} {
		got, why := SelectedBy(tc.labels, tc.label)
		if got != tc.want || why != tc.why || got != Selected(tc.labels, tc.label) {
			t.Errorf("%s: SelectedBy = %v, %q; want %v, %q (Selected says %v)", tc.name, got, why, tc.want, tc.why, Selected(tc.labels, tc.label))
		}
	}
}

func TestAppliedLabels(t *testing.T) {
	t.Parallel()
	labels := map[string]string{
		"x.max_restarts_in_frame": "1",
		"x.frame_size":            "soon",
		"x.notify_url":            "https://hooks.example/T0K3N",
		"x.notify_log_lines":      "5",
		"other":                   "1",
	}
	got := NewOverrides("x").Applied(labels)
	want := map[string]AppliedLabel{
		"frame_size":            {Label: "x.frame_size", Key: "frame_size", Value: "soon", Error: "expected a duration from 1s to 744h0m0s (such as 10s, or 10 for seconds)"},
		"max_restarts_in_frame": {Label: "x.max_restarts_in_frame", Key: "max_restarts_in_frame", Value: "1"},
		"notify_log_lines":      {Label: "x.notify_log_lines", Key: "notify_log_lines", Value: "5"},
		"notify_url":            {Label: "x.notify_url", Key: "notify_url", Value: "[redacted]"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for _, a := range got {
		if a != want[a.Key] {
			t.Errorf("%s: got %+v, want %+v", a.Key, a, want[a.Key])
		}
	}
	p, errs := NewOverrides("x").Policy(Policy{FrameSize: time.Minute, MaxRestartsInFrame: 3, NotifyLogLines: 10}, labels)
	if len(errs) != 1 || p.MaxRestartsInFrame != 1 || p.NotifyLogLines != 5 || p.FrameSize != time.Minute {
		t.Errorf("Policy disagrees: %+v %+v", p, errs)
	}
}
