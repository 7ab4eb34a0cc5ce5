package heal

import "testing"

func TestSelect(t *testing.T) {
	t.Parallel()
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		labels    map[string]string
		container string
		paused    bool
		want      Selection
	}{
		{"no label", l(), "app-a", false, Selection{}},
		{"label false", l("x", "false"), "app-a", false, Selection{}},
		{"outside the namespace", l("x", "true"), "other", false, Selection{}},
		{"healed", l("x", "true"), "app-a", false, Selection{Watched: true}},
		{"swarm task", l("x", "true", swarmTaskLabel, "t1"), "app-a", false, Selection{Watched: true, LeftAlone: ReasonSwarm}},
		{"one-off", l("x", "true", oneOffLabel, " True "), "app-a", false, Selection{Watched: true, LeftAlone: ReasonOneOff}},
		{"one-off false", l("x", "true", oneOffLabel, "False"), "app-a", false, Selection{Watched: true}},
		{"paused", l("x", "true"), "app-a", true, Selection{Watched: true, LeftAlone: ReasonPaused}},
		{"swarm before paused", l("x", "true", swarmTaskLabel, "t1"), "app-a", true, Selection{Watched: true, LeftAlone: ReasonSwarm}},
		{"paused but not watched", l(), "app-a", true, Selection{}},
	} {
		if got := Select(tc.labels, tc.container, tc.paused, "x", "app-"); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
