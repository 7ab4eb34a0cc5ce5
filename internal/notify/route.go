package notify

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/bus"
	"github.com/healmydocker/healmydocker/internal/events"
)

// Route is one record of the routes bucket: a target named in containers'
// labels, or (URL empty) the containers that set only a notify_level.
type Route struct {
	ID, URL string
	// Since is when the route became known: its first run starts there.
	Since time.Time
	// Containers name the containers whose events the target gets; none
	// (a route stored by an older healer) means all that name it.
	Containers []string
	// Levels are the containers' own notify_level labels, by container.
	Levels map[string]string
	// Seen is when each container was last seen naming the route (unix
	// seconds): a container named by two records (its labels changed) goes
	// by the newer.
	Seen map[string]int64
	// IDs are the ids of each container that named the route, by
	// container name: events of another container under that name (it
	// took the name later, or had it before) are not the route's.
	IDs map[string][]string
	// Revision is the bucket's revision of the record.
	Revision uint64
	// Deleted: no container named the target for a day.
	Deleted bool
	// durable is the consumer name; empty means ID.
	durable string
	// Host is the host that stored the route, when the route came to a hub
	// from that host's bucket (its key is <host>.<id>): its target gets that
	// host's containers only. Empty on a host: its own stream holds only
	// its own events.
	Host string
}

// RouteFromKey splits a routes bucket key: a hub's bucket sources each
// host's under <host>.<id>, a host's own holds bare ids.
func RouteFromKey(key string) Route {
	if host, id, ok := strings.Cut(key, "."); ok {
		return Route{ID: key, Host: host, durable: host + "_" + id}
	}
	return Route{ID: key, durable: key}
}

// RouteFromValue is the route stored under key with value v.
func RouteFromValue(key string, v bus.RouteValue) Route {
	rt := RouteFromKey(key)
	rt.URL, rt.Levels, rt.Seen = v.URL, v.Levels, v.Containers
	for id, c := range v.IDs {
		if rt.IDs == nil {
			rt.IDs = map[string][]string{}
		}
		rt.IDs[c.Name] = append(rt.IDs[c.Name], id)
	}
	for c := range v.Containers {
		rt.Containers = append(rt.Containers, c)
	}
	slices.Sort(rt.Containers)
	return rt
}

// consumer is the route's durable consumer name (no dots allowed there).
func (rt Route) consumer() string { return cmp.Or(rt.durable, rt.ID) }

// target is the id events are routed to: the bare target id, or "" for the
// default targets.
func (rt Route) target() string {
	if rt.URL == "" {
		return ""
	}
	return strings.TrimPrefix(rt.ID, rt.Host+".")
}

// subjects are the stream subjects of the route's containers: on the
// route's host when it came from one, else on any host. A host's route
// that names no container (the older form) reads all of its host's events,
// never every host's: none (read all) would have another host's events
// routed to its target id go to the URL this host stored under that id.
func (rt Route) subjects() []string {
	host := "*"
	if rt.Host != "" {
		host = events.SanitizeToken(rt.Host)
		if len(rt.Containers) == 0 {
			return []string{events.SubjectRoot + "." + host + ".>"}
		}
	}
	var s []string
	for _, c := range rt.Containers {
		s = append(s, events.SubjectRoot+"."+host+"."+events.SanitizeToken(c)+".>")
	}
	slices.Sort(s)
	return slices.Compact(s)
}
