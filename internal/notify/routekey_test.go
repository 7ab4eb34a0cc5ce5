package notify

import (
	"slices"
	"testing"
)

// A hub's bucket keys each host's routes as <host>.<id>: the route's
// consumer reads that host's containers only, under a name without dots.
func TestRouteFromKey(t *testing.T) {
	for _, c := range []struct {
		key, host, consumer string
		containers          []string
		subjects            []string
	}{
		{"notify-0a1b2c3d4e5f", "", "notify-0a1b2c3d4e5f", []string{"web"}, []string{"hmd.*.web.>"}},
		{"host-a.notify-0a1b2c3d4e5f", "host-a", "host-a_notify-0a1b2c3d4e5f", []string{"web"}, []string{"hmd.host-a.web.>"}},
		// The older form names no container: on a host, every event; from
		// a host on a hub, that host's only.
		{"notify-0a1b2c3d4e5f", "", "notify-0a1b2c3d4e5f", nil, nil},
		{"host-a.notify-0a1b2c3d4e5f", "host-a", "host-a_notify-0a1b2c3d4e5f", nil, []string{"hmd.host-a.>"}},
	} {
		rt := RouteFromKey(c.key)
		rt.Containers = c.containers
		if rt.ID != c.key || rt.Host != c.host || rt.consumer() != c.consumer || !slices.Equal(rt.subjects(), c.subjects) {
			t.Errorf("%s: id %q host %q consumer %q subjects %v; want host %q consumer %q subjects %v",
				c.key, rt.ID, rt.Host, rt.consumer(), rt.subjects(), c.host, c.consumer, c.subjects)
		}
	}
}
