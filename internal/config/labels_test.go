package config

import (
	"strings"
	"testing"
	"time"
)

func TestSelected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		labels map[string]string
		label  string
		want   bool
	}{
		{"true", map[string]string{"healme": "true"}, "healme", true},
		{"TRUE", map[string]string{"healme": "TRUE"}, "healme", true},
		{"absent", nil, "healme", false},
		{"false", map[string]string{"healme": "false"}, "healme", false},
		{"other value", map[string]string{"healme": "yes please"}, "healme", false},
		{"custom label", map[string]string{"autoheal": "true"}, "autoheal", true},
		{"all selects unlabelled", nil, "all", true},
		{"all respects false", map[string]string{"healme": "false"}, "all", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Selected(tt.labels, tt.label); got != tt.want {
				t.Errorf("Selected(%v, %q) = %v, want %v", tt.labels, tt.label, got, tt.want)
			}
		})
	}
}

func TestPolicyFor(t *testing.T) {
	t.Parallel()
	base := Policy{StopTimeout: 10 * time.Second}
	tests := []struct {
		name    string
		labels  map[string]string
		label   string
		want    time.Duration
		wantErr string
	}{
		{"no override", map[string]string{"healme": "true"}, "healme", 10 * time.Second, ""},
		{"seconds", map[string]string{"healme.stop_timeout": "30"}, "healme", 30 * time.Second, ""},
		{"duration", map[string]string{"healme.stop_timeout": "1m"}, "healme", time.Minute, ""},
		{"bad keeps default", map[string]string{"healme.stop_timeout": "soon"}, "healme", 10 * time.Second, "healme.stop_timeout"},
		{"other label's override ignored", map[string]string{"other.stop_timeout": "30"}, "healme", 10 * time.Second, ""},
		{"all uses healme prefix", map[string]string{"healme.stop_timeout": "5"}, "all", 5 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := PolicyFor(base, tt.labels, tt.label)
			if got.StopTimeout != tt.want {
				t.Errorf("stop timeout %s, want %s", got.StopTimeout, tt.want)
			}
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Errorf("errors %+v", errs)
			case tt.wantErr != "" && (len(errs) != 1 || errs[0].Label != tt.wantErr || errs[0].Expected == ""):
				t.Errorf("errors %+v, want one for %s", errs, tt.wantErr)
			}
		})
	}
}

func FuzzPolicyFor(f *testing.F) {
	for _, s := range []string{"10", "1m", "-1", "1e309", "NaN", "9223372036854775807s", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		base := Policy{StopTimeout: 10 * time.Second}
		p, errs := PolicyFor(base, map[string]string{"healme.stop_timeout": v}, "healme")
		if len(errs) > 0 && p != base {
			t.Errorf("bad value %q changed the policy to %+v", v, p)
		}
		if p.StopTimeout < 0 || p.StopTimeout > time.Hour {
			t.Errorf("value %q gave stop timeout %s outside its range", v, p.StopTimeout)
		}
	})
}

func FuzzLoadEnv(f *testing.F) {
	f.Add("HMD_HTTP_PORT", "abc")
	f.Add("HMD_STOP_TIMEOUT", "1.5")
	f.Fuzz(func(t *testing.T, k, v string) {
		_, err := Load(nil, []string{k + "=" + v}, nil, func(string) {})
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error for %s=%q spans lines: %q", k, v, err)
		}
	})
}

func TestNotifyLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		labels    map[string]string
		url, lvl  string
		badLabels []string
	}{
		{"none", nil, "", "", nil},
		{"ours", map[string]string{"healme.notify_url": "https://chat.example/hooks/x", "healme.notify_level": "DEBUG"}, "https://chat.example/hooks/x", "debug", nil},
		{"repairman's", map[string]string{Repairman + "notify_url": "gotify://g.example/tok", Repairman + "notify_level": "warning"}, "gotify://g.example/tok", "warning", nil},
		{"ours beats repairman's", map[string]string{"healme.notify_level": "info", Repairman + "notify_level": "debug"}, "", "info", nil},
		{"bad level", map[string]string{"healme.notify_level": "loud"}, "", "", []string{"healme.notify_level"}},
		{"not a url", map[string]string{"healme.notify_url": "chat.example/hooks"}, "", "", []string{"healme.notify_url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, errs := PolicyFor(Policy{}, tt.labels, "healme")
			if p.NotifyURL != tt.url || p.NotifyLevel != tt.lvl {
				t.Errorf("got url %q level %q, want %q %q", p.NotifyURL, p.NotifyLevel, tt.url, tt.lvl)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Label)
				if strings.Contains(e.Value, "chat.example") {
					t.Errorf("a label error repeats the URL: %+v", e)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.badLabels, ",") {
				t.Errorf("errors for %v, want %v", got, tt.badLabels)
			}
		})
	}
}
