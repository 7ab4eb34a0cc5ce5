// Package notify owns telling people what happened: which events a level
// wants, how a group of them reads, and delivering it to a target with
// retries, from a durable JetStream consumer so nothing is lost.
package notify

import (
	"fmt"
	"strings"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Level is how much a target hears, as Repairman defines it.
type Level int

// Levels, most talkative first.
const (
	Debug Level = iota
	Info
	Warning
)

// ParseLevel reads DEBUG, INFO or WARNING; anything else is an error, not
// "send everything".
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return Debug, nil
	case "INFO":
		return Info, nil
	case "WARNING", "WARN":
		return Warning, nil
	}
	return 0, fmt.Errorf("notify level %q: expected DEBUG, INFO or WARNING", s)
}

// NotifyRunnerWhere begins the name a notify runner's panics go under.
const NotifyRunnerWhere = "notify runner "

// Wants says whether a target at level l is told of e.
func Wants(l Level, e events.Event) bool {
	switch e.Kind() {
	case events.GaveUp:
		return true
	case events.ConfigError, events.Degraded:
		return true
	case events.RestartSkipped:
		return e.Data.Reason == events.ReasonFrameLimit
	case events.RestartFailed:
		return l <= Info
	case events.RestartSucceeded:
		return l <= Debug
	case events.RestartRequested:
		// Only a decision that is all there will be: nothing is sent to
		// Docker (action=notify, or monitor-only mode).
		return e.Data.Action == "notify" && l <= Info
	case events.Stopped:
		return l <= Info
	case events.DockerLost, events.DockerConnected:
		return l <= Info
	case events.CleanupRemoved, events.CleanupFailed, events.CleanupKept:
		return l <= Info
	case events.RecreateFailed:
		// The dependent has no network until someone acts.
		return true
	case events.Recreated:
		return l <= Info
	case events.HealerPanic:
		// A bug dropped some input (an event, a container's look): the
		// operator hears of it at every level. Not the notifier's own:
		// telling of it could panic again, and again.
		return !strings.HasPrefix(e.Data.Reason, NotifyRunnerWhere)
	}
	return false
}
