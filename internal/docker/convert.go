package docker

import (
	"strconv"
	"time"
	"unique"

	"github.com/moby/moby/api/types/events"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// intern returns one shared copy of s: what the healer keeps of each event
// (its container's name and image) repeats event after event, and images
// across containers.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// Convert turns a daemon event into an observation; ok is false for
// events the healer does not publish.
func Convert(m events.Message) (hmd.Observed, bool) {
	if m.Type != events.ContainerEventType {
		return hmd.Observed{}, false
	}
	var k hmd.Kind
	switch m.Action {
	case events.ActionHealthStatusUnhealthy:
		k = hmd.DockerUnhealthy
	case events.ActionHealthStatusHealthy:
		k = hmd.DockerHealthy
	case events.ActionStart:
		k = hmd.DockerStart
	case events.ActionDie:
		k = hmd.DockerDie
	case events.ActionKill:
		k = hmd.DockerKill
	case events.ActionStop:
		k = hmd.DockerStop
	case events.ActionOOM:
		k = hmd.DockerOOM
	case events.ActionDestroy:
		k = hmd.DockerDestroy
	case events.ActionCreate:
		k = hmd.DockerCreate
	case events.ActionRename:
		k = hmd.DockerRename
	default:
		return hmd.Observed{}, false
	}
	t := m.TimeNano
	if t == 0 {
		t = m.Time * 1e9
	}
	attrs := m.Actor.Attributes
	o := hmd.Observed{
		Kind:        k,
		ContainerID: m.Actor.ID,
		Name:        intern(attrs["name"]),
		Image:       intern(attrs["image"]),
		DockerTime:  time.Unix(0, t),
		Labels:      make(map[string]string, len(attrs)),
	}
	// The daemon sets name and image after copying the labels, so those are
	// its own; exitCode and signal it sets before, so a label of that name
	// wins. Seen on an event that does not carry them, they are labels.
	if k == hmd.DockerDie {
		if s, ok := attrs["exitCode"]; ok {
			if code, err := strconv.Atoi(s); err == nil {
				o.ExitCode = &code
			}
		}
	} else if _, ok := attrs["exitCode"]; ok {
		o.AmbiguousAttrs = append(o.AmbiguousAttrs, "exitCode")
	}
	if k == hmd.DockerKill {
		o.Signal = attrs["signal"]
	} else if _, ok := attrs["signal"]; ok {
		o.AmbiguousAttrs = append(o.AmbiguousAttrs, "signal")
	}
	// The daemon mixes its own attributes into the container's labels.
	for key, v := range attrs {
		switch key {
		case "name", "image", "exitCode", "signal", "execDuration", "oldName":
		default:
			o.Labels[key] = v
		}
	}
	return o, true
}
