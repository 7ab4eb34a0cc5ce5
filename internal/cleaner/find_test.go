package cleaner

import (
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func compose(name, id string, running bool, age time.Duration) events.Container {
	return events.Container{ID: id, Name: name, Running: running, Created: now.Add(-age), Labels: map[string]string{
		LabelProject: "app", LabelService: "web", LabelNumber: "1", LabelOneoff: "False",
	}}
}

func TestStrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		prefixed bool
	}{
		{"app_web_1", "app_web_1", false},
		{"2c457ba8998f_app_web_1", "app_web_1", true},
		{"2c457ba8998f_2c457ba8998f_app_web_1", "app_web_1", true},
		{"/2c457ba8998f_app_web_1", "app_web_1", true},
		{"2C457BA8998F_app_web_1", "2C457BA8998F_app_web_1", false},
		{"2c457ba8998_app_web_1", "2c457ba8998_app_web_1", false},
		{"2c457ba8998f_", "2c457ba8998f_", false},
	}
	for _, tt := range tests {
		got, p := Strip(tt.in)
		if got != tt.want || p != tt.prefixed {
			t.Errorf("Strip(%q) = %q, %v; want %q, %v", tt.in, got, p, tt.want, tt.prefixed)
		}
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	grace := time.Minute
	healthy := func(c events.Container) events.Container { c.HasHealthcheck, c.Health = true, "healthy"; return c }
	sick := func(c events.Container) events.Container { c.HasHealthcheck, c.Health = true, "unhealthy"; return c }
	tests := []struct {
		name   string
		cs     []events.Container
		want   Action
		reason string
		none   bool
	}{
		{"duplicate of a running sibling", []events.Container{compose("app_web_1", "a", true, time.Hour), compose("0123456789ab_app_web_1", "b", false, time.Hour)}, Remove, ReasonDuplicate, false},
		{"chained prefix", []events.Container{compose("app_web_1", "a", true, time.Hour), compose("0123456789ab_0123456789ab_app_web_1", "b", true, time.Hour)}, Remove, ReasonDuplicate, false},
		{"healthy sibling", []events.Container{healthy(compose("app_web_1", "a", true, time.Hour)), compose("0123456789ab_app_web_1", "b", true, time.Hour)}, Remove, ReasonDuplicate, false},
		{"unhealthy sibling", []events.Container{sick(compose("app_web_1", "a", true, time.Hour)), compose("0123456789ab_app_web_1", "b", true, time.Hour)}, Keep, ReasonNotReady, false},
		{"stopped sibling", []events.Container{compose("app_web_1", "a", false, time.Hour), compose("0123456789ab_app_web_1", "b", true, time.Hour)}, Keep, ReasonNotReady, false},
		{"no sibling: compose 2.16 may have only this one", []events.Container{compose("0123456789ab_app_web_1", "b", true, time.Hour)}, Keep, ReasonNoSibling, false},
		{"young duplicate", []events.Container{compose("app_web_1", "a", true, time.Hour), compose("0123456789ab_app_web_1", "b", false, 10*time.Second)}, Wait, ReasonGrace, false},
		{"no compose labels", []events.Container{{ID: "x", Name: "0123456789ab_backup", Created: now.Add(-time.Hour)}}, 0, "", true},
		{"one-off run container", []events.Container{compose("app_web_1", "a", true, time.Hour), func() events.Container {
			c := compose("0123456789ab_app_web_1", "b", true, time.Hour)
			c.Labels[LabelOneoff] = "True"
			return c
		}()}, 0, "", true},
		{"sibling of another number", []events.Container{compose("app_web_1", "a", true, time.Hour), func() events.Container {
			c := compose("0123456789ab_app_web_2", "b", true, time.Hour)
			c.Labels[LabelNumber] = "2"
			return c
		}()}, Keep, ReasonNoSibling, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Find(tt.cs, now, grace)
			if tt.none {
				if len(got) != 0 {
					t.Fatalf("findings %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d findings, want 1: %+v", len(got), got)
			}
			if got[0].Action != tt.want || got[0].Reason != tt.reason {
				t.Errorf("action %d (%s), want %d (%s)", got[0].Action, got[0].Reason, tt.want, tt.reason)
			}
			if got[0].Duplicate.ID != "b" {
				t.Errorf("finding about %s, want the prefixed one", got[0].Duplicate.Name)
			}
		})
	}
}

func FuzzStrip(f *testing.F) {
	f.Add("2c457ba8998f_2c457ba8998f_app_web_1")
	f.Fuzz(func(t *testing.T, name string) {
		base, prefixed := Strip(name)
		if prefixed && (base == "" || len(base) >= len(name)) {
			t.Errorf("Strip(%q) = %q", name, base)
		}
	})
}
