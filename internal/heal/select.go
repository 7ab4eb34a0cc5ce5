package heal

import "github.com/healmydocker/healmydocker/internal/config"

// Watched says whether the healer takes a container's events at all: a
// label selects it and its name is in the namespace.
func Watched(labels map[string]string, name, label, namespace string) bool {
	return config.Selected(labels, label) && config.InNamespace(name, namespace)
}

// SwarmTask says whether Swarm owns the container: it replaces its tasks,
// so the healer leaves them alone.
func SwarmTask(labels map[string]string) bool { return labels[swarmTaskLabel] != "" }

// OneOff says whether the container is a compose one-off (docker compose
// run), which is not started again once it exits.
func OneOff(labels map[string]string) bool { return isTrue(labels[oneOffLabel]) }

// Selection is what the healer makes of a container as it stands, before
// any event: whether it watches it, and why it leaves a watched one alone.
type Selection struct {
	Watched bool
	// LeftAlone is ReasonSwarm, ReasonOneOff or ReasonPaused for a watched
	// container that is not healed; empty when it is.
	LeftAlone string
}

// Select applies the healer's rules (Watched, SwarmTask, OneOff, and a
// container paused with docker pause) to one container, for those who
// explain the healer, such as `healer check`.
func Select(labels map[string]string, name string, paused bool, label, namespace string) Selection {
	switch {
	case !Watched(labels, name, label, namespace):
		return Selection{}
	case SwarmTask(labels):
		return Selection{Watched: true, LeftAlone: ReasonSwarm}
	case OneOff(labels):
		return Selection{Watched: true, LeftAlone: ReasonOneOff}
	case paused:
		return Selection{Watched: true, LeftAlone: ReasonPaused}
	}
	return Selection{Watched: true}
}
