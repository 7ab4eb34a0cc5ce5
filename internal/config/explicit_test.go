package config

import (
	"testing"
	"time"
)

// heal_exited set explicitly anywhere, and stop_timeout from a label, are
// known to the healer: under container_label=all the first decides whether
// crashes are healed, and the second wins over a container's own timeout.
func TestExplicitSettingsAreKnown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		args    []string
		environ []string
		want    bool
	}{
		{name: "default", want: false},
		{name: "env", environ: []string{"HMD_HEAL_EXITED=true"}, want: true},
		{name: "flag", args: []string{"--heal-exited=false"}, want: true},
	} {
		c, err := load(t, tt.args, tt.environ)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Policy.HealExitedSet != tt.want {
			t.Errorf("%s: heal_exited set %v, want %v", tt.name, c.Policy.HealExitedSet, tt.want)
		}
	}
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxLabelStopTimeout != 5*time.Minute {
		t.Errorf("max_label_stop_timeout %s, want 5m", c.MaxLabelStopTimeout)
	}
	p, errs := PolicyFor(c.Policy, map[string]string{"healme.stop_timeout": "0.5", "healme.heal_exited": "true"}, "all")
	if len(errs) > 0 || !p.StopTimeoutFromLabel || p.StopTimeout != 500*time.Millisecond || !p.HealExitedSet {
		t.Errorf("policy from labels %+v (%v): want stop timeout 0.5 s from the label, heal_exited set", p, errs)
	}
	p, _ = PolicyFor(c.Policy, map[string]string{"healme.stop_timeout": "soon"}, "all")
	if p.StopTimeoutFromLabel || p.HealExitedSet {
		t.Errorf("a bad label value counts as set: %+v", p)
	}
}
