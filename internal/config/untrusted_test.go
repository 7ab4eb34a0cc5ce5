package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestCheckNotifyURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.slack.com/services/T0/B0/XYZ", true},
		{"http://127.0.0.1:8080/hooks/x", true},
		{"http://[::1]:8080/hooks/x", true},
		{"gotify://gotify.example/Atoken", true},
		{"generic+https://example.org/hook?title=x", true},
		{"discord://token@12345", true},
		{"smtp://user:pass@mail.example:587/?to=a@example.org", true},
		{"https://%ff.x/", false},                        // host decodes to invalid UTF-8
		{"https://a%00b.example/", false},                // NUL in the host
		{"https://hooks.slack.com@evil.example/", false}, // user info disguises the host
		{"https://user:pw@hooks.example/", false},
		{"https://ex ample.org/", false},
		{"https://example.org/\xff", false},
		{"https://example.org/%ff", false},
		{"https://example.org/?q=%ff", false},
		{"https://example.org:99999/", false},
		{"https:///nohost", false},
		{"file:///etc/passwd", false},
		{"javascript://x/", false},
		{"hooks.example/T0/SECRET", false},
		{"https://exa\u202emple.org/", false},
		{"gotify://g\u00e9.example/x", false},
	} {
		err := CheckNotifyURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckNotifyURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

func TestNotifyURLLabelRefusedAndAllowList(t *testing.T) {
	t.Parallel()
	base := policyDefaults(t)
	p, errs := PolicyFor(base, map[string]string{"healme": "true", "healme.notify_url": "https://%ff.x/"}, "healme")
	if p.NotifyURL != "" || len(errs) != 1 || errs[0].Label != "healme.notify_url" || errs[0].Value != "[redacted]" {
		t.Errorf("hostile URL: policy %q, errs %+v", p.NotifyURL, errs)
	}
	for _, tt := range []struct {
		allow, url string
		ok         bool
	}{
		{"", "https://anything.example/x", true},
		{"off", "https://hooks.slack.com/x", false},
		{"OFF", "gotify://g.example/x", false},
		{"hooks.slack.com, gotify", "https://hooks.slack.com/x", true},
		{"hooks.slack.com, gotify", "gotify://g.example/x", true},
		{"hooks.slack.com, gotify", "https://evil.example/x", false},
		{"https://chat.example.org", "https://chat.example.org/hooks/1", true},
		{"https://chat.example.org", "http://chat.example.org/hooks/1", false},
	} {
		b := base
		b.NotifyLabelTargets = tt.allow
		p, errs := PolicyFor(b, map[string]string{"healme.notify_url": tt.url}, "healme")
		if got := p.NotifyURL == tt.url; got != tt.ok || (len(errs) == 0) != tt.ok {
			t.Errorf("allow %q, url %q: NotifyURL %q, errs %+v; want ok=%v", tt.allow, tt.url, p.NotifyURL, errs, tt.ok)
		}
		if len(errs) > 0 && (errs[0].Value != "[redacted]" || !strings.Contains(errs[0].Expected, "notify_label_targets")) {
			t.Errorf("allow %q: error %+v does not say why", tt.allow, errs[0])
		}
	}
}

func TestMaxHistoricEntriesClampedFromLabel(t *testing.T) {
	t.Parallel()
	base := policyDefaults(t)
	p, errs := PolicyFor(base, map[string]string{"healme.max_historic_entries": "100000"}, "healme")
	if p.MaxHistoricEntries != MaxLabelHistoricEntries {
		t.Errorf("MaxHistoricEntries = %d, want %d", p.MaxHistoricEntries, MaxLabelHistoricEntries)
	}
	want := []LabelError{{Label: "healme.max_historic_entries", Value: "100000", Expected: "at most 1000 from a label; 1000 is used"}}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("errs = %+v, want %+v", errs, want)
	}
	if p, errs := PolicyFor(base, map[string]string{"healme.max_historic_entries": "1000"}, "healme"); p.MaxHistoricEntries != 1000 || len(errs) != 0 {
		t.Errorf("1000: %d %+v", p.MaxHistoricEntries, errs)
	}
}

func TestSelectionIsWhatTheOperatorConfigured(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		labels map[string]string
		label  string
		want   bool
	}{
		{"autoheal under the default", map[string]string{"autoheal": "true"}, "healme", true},
		{"Repairman under the default", map[string]string{Repairman + "enable_autoheal": "yes"}, "healme", true},
		{"autoheal under a custom label", map[string]string{"autoheal": "true"}, "team-a.heal", false},
		{"Repairman under a custom label", map[string]string{Repairman + "enable_autoheal": "true"}, "team-a.heal", false},
		{"custom label itself", map[string]string{"team-a.heal": "ON"}, "team-a.heal", true},
		{"autoheal chosen as the label", map[string]string{"autoheal": "1"}, "autoheal", true},
		{"all, excluded by an alias", map[string]string{"autoheal": "no"}, "all", false},
		{"yes", map[string]string{"healme": "Yes"}, "healme", true},
		{"1", map[string]string{"healme": "1"}, "healme", true},
		{"off", map[string]string{"healme": "off"}, "healme", false},
		{"garbage selects nothing", map[string]string{"healme": "maybe"}, "healme", false},
		{"garbage under all is not an exclusion", map[string]string{"healme": "maybe"}, "all", true},
		{"all, excluded", map[string]string{"healme": "FALSE"}, "all", false},
	} {
		if got := Selected(tt.labels, tt.label); got != tt.want {
			t.Errorf("%s: Selected(%v, %q) = %v, want %v", tt.name, tt.labels, tt.label, got, tt.want)
		}
	}
}

func TestSelectionErrorsNameTheLabel(t *testing.T) {
	t.Parallel()
	errs := SelectionErrors(map[string]string{"healme": "treu", "autoheal": "TRUE", "other": "x"}, "healme")
	if len(errs) != 1 || errs[0].Label != "healme" || errs[0].Value != "treu" || !strings.Contains(errs[0].Expected, "yes/no") {
		t.Errorf("errs = %+v", errs)
	}
	if errs := SelectionErrors(map[string]string{"autoheal": "sure"}, "team.heal"); len(errs) != 0 {
		t.Errorf("an alias that does not apply is not reported: %+v", errs)
	}
	if errs := SelectionErrors(map[string]string{"autoheal": "sure"}, "healme"); len(errs) != 1 || errs[0].Label != "autoheal" {
		t.Errorf("alias under the default: %+v", errs)
	}
}

func TestParseBool(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"true", "TRUE", "1", "yes", "YES", "on", "On", " true "} {
		if b, ok := ParseBool(v); !b || !ok {
			t.Errorf("ParseBool(%q) = %v, %v", v, b, ok)
		}
	}
	for _, v := range []string{"false", "0", "no", "OFF", "False"} {
		if b, ok := ParseBool(v); b || !ok {
			t.Errorf("ParseBool(%q) = %v, %v", v, b, ok)
		}
	}
	for _, v := range []string{"", "2", "yess", "enable", "tru"} {
		if _, ok := ParseBool(v); ok {
			t.Errorf("ParseBool(%q) accepted", v)
		}
	}
}

// Notify, the routes' cheap read, takes exactly what Policy takes: a
// route never holds a URL or level the healer reported as refused.
func TestNotifyReadsWhatPolicyTakes(t *testing.T) {
	t.Parallel()
	base := policyDefaults(t)
	o := NewOverrides("healme")
	for _, tt := range []struct {
		name       string
		allow      string
		labels     map[string]string
		url, level string
	}{
		{"none", "", map[string]string{"healme": "true"}, "", ""},
		{"ours", "", map[string]string{"healme.notify_url": " https://chat.example.org/hooks/1 ", "healme.notify_level": "WARNING"}, "https://chat.example.org/hooks/1", "warning"},
		{"Repairman's", "", map[string]string{Repairman + "notify_url": "https://chat.example.org/r", Repairman + "notify_level": "debug"}, "https://chat.example.org/r", "debug"},
		{"ours over Repairman's", "", map[string]string{"healme.notify_url": "https://a.example/1", Repairman + "notify_url": "https://b.example/2"}, "https://a.example/1", ""},
		{"hostile URL", "", map[string]string{"healme.notify_url": "https://%ff.x/", "healme.notify_level": "info"}, "", "info"},
		{"bad level", "", map[string]string{"healme.notify_url": "https://a.example/1", "healme.notify_level": "loud"}, "https://a.example/1", ""},
		{"target not allowed", "hooks.slack.com", map[string]string{"healme.notify_url": "https://evil.example/x"}, "", ""},
		{"labels off", "off", map[string]string{"healme.notify_url": "https://a.example/1", "healme.notify_level": "debug"}, "", "debug"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := base
			b.NotifyLabelTargets = tt.allow
			url, level := o.Notify(b, tt.labels)
			if url != tt.url || level != tt.level {
				t.Errorf("Notify = %q, %q; want %q, %q", url, level, tt.url, tt.level)
			}
			if p, _ := o.Policy(b, tt.labels); p.NotifyURL != url || p.NotifyLevel != level {
				t.Errorf("Policy took %q, %q; Notify %q, %q", p.NotifyURL, p.NotifyLevel, url, level)
			}
		})
	}
}
