// Package events owns the schema of everything HealMyDocker publishes: the
// CloudEvents 1.0 envelope, the kinds of event, their NATS subjects and their
// deterministic ids. It does no I/O.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is bumped on any incompatible change to Data or to the
// subject layout; it is part of every CloudEvents type.
const SchemaVersion = "v1"

// SubjectRoot is the first token of every subject the system publishes.
const SubjectRoot = "hmd"

// HostSubject is the container token of events about the healer itself.
const HostSubject = "_"

// Kind names what happened, as "<category>.<action>".
type Kind string

// Observed Docker events.
const (
	DockerHealthy   Kind = "docker.health_healthy"
	DockerUnhealthy Kind = "docker.health_unhealthy"
	DockerStart     Kind = "docker.start"
	DockerDie       Kind = "docker.die"
	DockerKill      Kind = "docker.kill"
	DockerStop      Kind = "docker.stop"
	DockerOOM       Kind = "docker.oom"
	DockerDestroy   Kind = "docker.destroy"
	DockerCreate    Kind = "docker.create"
	DockerRename    Kind = "docker.rename"
)

// The duplicate cleaner's findings and actions.
const (
	CleanupFound   Kind = "cleanup.found"
	CleanupRemoved Kind = "cleanup.removed"
	CleanupKept    Kind = "cleanup.kept"
	CleanupFailed  Kind = "cleanup.failed"
)

// Decisions the healer takes.
const (
	RestartRequested Kind = "decision.restart_requested"
	RestartSkipped   Kind = "decision.restart_skipped"
	GaveUp           Kind = "decision.gave_up"
)

// Outcomes of the healer's actions.
const (
	RestartSucceeded Kind = "outcome.restart_succeeded"
	RestartFailed    Kind = "outcome.restart_failed"
	// Stopped: action=stop stopped an unhealthy container, which stays so.
	Stopped Kind = "outcome.stopped"
)

// A person's control of the healer: a container paused for maintenance,
// and its end (by command, or when its time was up).
const (
	ControlPaused  Kind = "control.paused"
	ControlResumed Kind = "control.resumed"
)

// Re-attaching a dependent whose network parent was recreated: the
// decision, the new container (NewContainerID) and a failure, after which
// the old container is left as it was.
const (
	RecreateRequested Kind = "decision.recreate_requested"
	Recreated         Kind = "outcome.recreated"
	RecreateFailed    Kind = "dependent.recreate_failed"
)

// NotifyFailed: a notification target refused a message for good.
const NotifyFailed Kind = "notify.failed"

// The healer's own lifecycle and configuration.
const (
	HealerStarted   Kind = "healer.started"
	HealerStopped   Kind = "healer.stopped"
	DockerConnected Kind = "healer.docker_connected"
	DockerLost      Kind = "healer.docker_lost"
	// Degraded: the healer's own store failed; it heals on from Docker's
	// state and queues events until the store is back (`reason`).
	Degraded    Kind = "healer.degraded"
	ConfigError Kind = "config.error"
	// HealerPanic: a goroutine recovered from a panic on some input, dropped
	// that input and went on.
	HealerPanic Kind = "healer.panic"
)

// ReasonFrameLimit is the reason of a restart skipped because the frame is
// used up: the notifier tells people of it, so it is part of the schema.
const ReasonFrameLimit = "restart limit reached in frame"

// Kinds lists every kind, for documentation and validation.
var Kinds = []Kind{
	DockerHealthy, DockerUnhealthy, DockerStart, DockerDie, DockerKill, DockerStop, DockerOOM, DockerDestroy, DockerCreate, DockerRename,
	CleanupFound, CleanupRemoved, CleanupKept, CleanupFailed, NotifyFailed,
	RestartRequested, RestartSkipped, GaveUp,
	RestartSucceeded, RestartFailed, Stopped, ControlPaused, ControlResumed,
	RecreateRequested, Recreated, RecreateFailed,
	HealerStarted, HealerStopped, DockerConnected, DockerLost, Degraded, ConfigError, HealerPanic,
}

// Category is the part of the kind before the dot: docker, decision, outcome, healer or config.
func (k Kind) Category() string {
	c, _, _ := strings.Cut(string(k), ".")
	return c
}

// Action is the part of the kind after the dot.
func (k Kind) Action() string {
	_, a, _ := strings.Cut(string(k), ".")
	return a
}

// Type is the CloudEvents type of the kind.
func (k Kind) Type() string {
	return "io.healmydocker." + SchemaVersion + "." + string(k)
}

// KindFromType is the inverse of Kind.Type.
func KindFromType(t string) (Kind, error) {
	prefix := "io.healmydocker." + SchemaVersion + "."
	if !strings.HasPrefix(t, prefix) {
		return "", fmt.Errorf("event type %q: want prefix %q", t, prefix)
	}
	k := Kind(strings.TrimPrefix(t, prefix))
	for _, known := range Kinds {
		if k == known {
			return k, nil
		}
	}
	return "", fmt.Errorf("event type %q: unknown kind %q", t, k)
}

// Event is a CloudEvents 1.0 event in structured JSON mode.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"`
	DataContentType string    `json:"datacontenttype"`
	Data            Data      `json:"data"`
}

// Data is the payload of every event. One flat struct keeps consumers simple:
// fields that do not apply to a kind are left out.
type Data struct {
	Host        string `json:"host"`
	ContainerID string `json:"container_id,omitempty"`
	Container   string `json:"container,omitempty"`
	Image       string `json:"image,omitempty"`
	// DockerTimeNano is the daemon's clock for observed events.
	DockerTimeNano int64  `json:"docker_time_nano,omitempty"`
	ExitCode       *int   `json:"exit_code,omitempty"`
	Signal         string `json:"signal,omitempty"`
	// Reconciled marks an observation made by listing, not by the event stream.
	Reconciled bool `json:"reconciled,omitempty"`
	// Cause is the id of the event that led to this decision or outcome.
	Cause      string  `json:"cause,omitempty"`
	Reason     string  `json:"reason,omitempty"`
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	// Label, Value and Expected describe a config error.
	Label    string `json:"label,omitempty"`
	Value    string `json:"value,omitempty"`
	Expected string `json:"expected,omitempty"`
	Version  string `json:"version,omitempty"`
	// Attempt counts restarts since the container last stayed healthy for a
	// whole frame; FrameStart and FrameRestarts describe the current frame;
	// BackoffStep is the exponential backoff's position. Restart decisions
	// carry them so the policy needs only the latest one.
	Attempt       int        `json:"attempt,omitempty"`
	FrameStart    *time.Time `json:"frame_start,omitempty"`
	FrameRestarts int        `json:"frame_restarts,omitempty"`
	BackoffStep   int        `json:"backoff_step,omitempty"`
	// RetryAt is when a skipped restart is looked at again.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	// Until is when a pause ends by itself; absent, it lasts until resumed.
	Until *time.Time `json:"until,omitempty"`
	// Canonical names the container a duplicate duplicates.
	Canonical string `json:"canonical,omitempty"`
	// DryRun marks what the cleaner, or the healer in monitor-only mode,
	// would have done.
	DryRun bool `json:"dry_run,omitempty"`
	// Action is what a decision does when it is not a restart: stop, or
	// notify (decided and told, nothing sent to Docker).
	Action string `json:"action,omitempty"`
	// Output is the last failed health probe's output, on the outcome of a
	// restart for being unhealthy.
	Output string `json:"output,omitempty"`
	// LogTail is the container's last log lines (notify_log_lines of them,
	// bounded in bytes, control characters dropped), read before a restart
	// for being unhealthy and after the die of a crash; "logs unavailable:
	// <driver>" when the daemon cannot read its log driver.
	LogTail string `json:"log_tail,omitempty"`
	// NotifyTarget names a notification target by its id (never its URL,
	// which may hold a token): the notifier's own notify.failed sets it.
	// The healer no longer sets either field (notifiers route by the
	// routes bucket); those an older healer stored, carrying a container's
	// own target and level, are still routed by them.
	NotifyTarget string `json:"notify_target,omitempty"`
	NotifyLevel  string `json:"notify_level,omitempty"`
	// Parent names the network parent (or compose dependency) on whose
	// account a dependent is acted on or reported.
	Parent string `json:"parent,omitempty"`
	// NewContainerID is the id of the container that replaced ContainerID.
	NewContainerID string `json:"new_container_id,omitempty"`
}

// New builds an event of kind k about container (empty for the healer itself).
func New(k Kind, id string, t time.Time, container string, d Data) Event {
	return Event{
		SpecVersion:     "1.0",
		ID:              id,
		Source:          Source(d.Host),
		Type:            k.Type(),
		Time:            t.UTC(),
		Subject:         container,
		DataContentType: "application/json",
		Data:            d,
	}
}

// Kind returns the kind of the event, or "" if its type is not ours.
func (e Event) Kind() Kind {
	k, err := KindFromType(e.Type)
	if err != nil {
		return ""
	}
	return k
}

// NATSSubject is the subject the event is published on.
func (e Event) NATSSubject() string {
	return Subject(e.Data.Host, e.Subject, e.Kind())
}

// Source is the CloudEvents source of events from host.
func Source(host string) string {
	return "/healmydocker/" + SanitizeToken(host)
}

// Subject is hmd.<host>.<container>.<category>.<action>, so subscribers can
// filter by host (hmd.web1.>), container (hmd.*.db.>) or kind
// (hmd.*.*.outcome.>). Events about the healer itself use "_" as container.
func Subject(host, container string, k Kind) string {
	c := HostSubject
	if container != "" {
		c = SanitizeToken(container)
	}
	return SubjectRoot + "." + SanitizeToken(host) + "." + c + "." + k.Category() + "." + k.Action()
}

// SanitizeToken makes s usable as one NATS subject token. Dots, wildcards,
// white space and anything outside a conservative ASCII set become "_"; the
// real name is always in the event itself.
func SanitizeToken(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// DockerEventID is the id of an observed Docker event. It depends only on the
// event, so a replayed or re-read event gets the same id and JetStream stores
// it once.
func DockerEventID(host, containerID string, k Kind, timeNano int64) string {
	return SanitizeToken(host) + "/" + ShortID(containerID) + "/" + k.Action() + "/" + strconv.FormatInt(timeNano, 10)
}

// DerivedID is the id of a decision or outcome caused by the event cause.
func DerivedID(cause string, k Kind) string {
	return cause + "/" + k.Action()
}

// ShortID is the 12-character form of a container id.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Marshal encodes e as JSON.
func Marshal(e Event) ([]byte, error) {
	return json.Marshal(e)
}

// Unmarshal decodes and checks one event.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if e.SpecVersion != "1.0" {
		return Event{}, fmt.Errorf("decode event %q: specversion %q, want 1.0", e.ID, e.SpecVersion)
	}
	if e.ID == "" {
		return Event{}, fmt.Errorf("decode event: empty id")
	}
	if _, err := KindFromType(e.Type); err != nil {
		return Event{}, fmt.Errorf("decode event %q: %w", e.ID, err)
	}
	return e, nil
}

// NotifyTargetID names a notification target without revealing its URL:
// events carry it, and it names the target's durable consumer.
func NotifyTargetID(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "notify-" + hex.EncodeToString(sum[:6])
}
