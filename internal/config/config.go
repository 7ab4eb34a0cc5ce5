// Package config owns the healer's settings: their names, defaults, help,
// parsing and validation, loaded in layers through koanf (defaults, a YAML
// file, HMD_* environment, flags) and overridden per container by labels.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable of ours.
const EnvPrefix = "HMD_"

// Policy holds the settings that a container's labels may override.
type Policy struct {
	StopTimeout time.Duration
	// BetweenRestarts (seconds_between_restarts) is the least time between
	// two restarts of one container.
	BetweenRestarts time.Duration
	// FrameSize is the window in which at most MaxRestartsInFrame restarts
	// happen; BetweenFrames (seconds_between_next_frame) is the wait after
	// a frame is used up.
	FrameSize          time.Duration
	MaxRestartsInFrame int
	BetweenFrames      time.Duration
	// GiveUpAfterRestarts (max_checks_to_give_up) is how many restarts
	// without staying healthy the healer makes before it gives up; 0: never.
	GiveUpAfterRestarts int
	Backoff             string
	BackoffInitial      time.Duration
	BackoffMax          time.Duration
	BackoffReset        time.Duration
	StartGrace          time.Duration
	HealExited          bool
	HealExitZero        bool
	RestartDependents   bool
	Recreate            bool
	MaxHistoricEntries  int
	CleanDuplicates     bool
	// NotifyURL and NotifyLevel come only from a container's labels
	// <label>.notify_url and <label>.notify_level: empty means the
	// notifier's defaults.
	NotifyURL   string
	NotifyLevel string
	// StopTimeoutFromLabel: StopTimeout comes from the container's label,
	// which wins over the container's own stop timeout (capped by
	// max_label_stop_timeout).
	StopTimeoutFromLabel bool
	// HealExitedSet: heal_exited was set explicitly (file, env, flag or
	// label), which under container_label=all is needed for it to apply to
	// containers without the selection label.
	HealExitedSet bool
	// Action is what healing does: restart (the default), stop, notify or
	// none; a container's label <label>.action overrides it.
	Action string
	// DryRun (monitor-only mode) makes every container's action notify, and
	// marks what would have been done dry_run.
	DryRun bool
	// NotifyLogLines is how many of the container's last log lines a crash
	// or unhealthy restart carries (0: none).
	NotifyLogLines int
	// NotifyLabelTargets limits the notify_url labels: empty allows any,
	// "off" none, else a comma list of schemes and hosts; see LabelTargetAllowed.
	NotifyLabelTargets string
}

// Actions a policy may take on a container that needs healing.
const (
	ActionRestart = "restart"
	ActionStop    = "stop"
	ActionNotify  = "notify"
	ActionNone    = "none"
)

// Effective is the action healing takes: the policy's, or notify in
// monitor-only mode for anything that would touch the container.
func (p Policy) Effective() string {
	if p.DryRun && (p.Action == ActionRestart || p.Action == ActionStop || p.Action == "") {
		return ActionNotify
	}
	if p.Action == "" {
		return ActionRestart
	}
	return p.Action
}

// Backoff modes.
const (
	BackoffFrames      = "frames"
	BackoffExponential = "exponential"
)

// Config is the healer's whole configuration.
type Config struct {
	DataDir        string
	ContainerLabel string
	Namespace      string
	HostName       string
	// Fleet: the hub's leaf-node URL and credentials, its JetStream domain
	// and the fleet stream there; EventsStream is what readers read.
	HubURL                Secret
	HubUser               string
	HubPassword           Secret
	HubDomain             string
	HubStream             string
	EventsStream          string
	MaxConcurrentRestarts int
	// MaxLabelStopTimeout caps a stop timeout that a label asks for.
	MaxLabelStopTimeout time.Duration
	Policy              Policy

	HTTPAddress string
	HTTPPort    int
	HTTPPrefix  string
	// HTTPMaxStreams bounds the live event streams served at once.
	HTTPMaxStreams int

	LogFormat string
	LogLevel  string
	Debug     bool

	DockerReconcileInterval time.Duration
	DockerPingInterval      time.Duration
	// DockerTimeout bounds each short Docker call (ping, inspect, list).
	DockerTimeout time.Duration
	// ShutdownTimeout bounds the healer's stop, restarts in flight or not.
	ShutdownTimeout time.Duration
	Retention       time.Duration
	// EventsMaxBytes and HistoryMaxBytes bound the streams on disk; the
	// oldest events go first.
	EventsMaxBytes  int64
	HistoryMaxBytes int64

	NotifyURL          Secret
	NotifyURLFile      string
	NotifyLevel        string
	NotifyGroupWait    time.Duration
	NotifyMaxBackoff   time.Duration
	NotifyUsername     string
	NotifyTemplateFile string

	CleanGrace    time.Duration
	CleanInterval time.Duration
	CleanDryRun   bool
	RunCleaner    bool
	RunNotifier   bool

	NATSListen   string
	NATSURL      string
	NATSUser     string
	NATSPassword Secret
	NATSToken    Secret
	HTTPToken    Secret
	// NATSReaderUser may read events and the history, and nothing else.
	NATSReaderUser     string
	NATSReaderPassword Secret
	// NATS TLS files: the listener's certificate, key and client CA, or a
	// client's CA for the listener and its own certificate and key.
	NATSTLSCert, NATSTLSKey, NATSTLSCA string
}

// Secret is a string that never prints itself.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Error is a bad setting: the key, the value, and what was expected.
type Error struct {
	Key      string
	Source   string
	Value    string
	Expected string
}

func (e *Error) Error() string {
	src := ""
	if e.Source != "" {
		src = " (" + e.Source + ")"
	}
	return fmt.Sprintf("invalid %s%s: %q: expected %s", e.Key, src, e.Value, e.Expected)
}

// ErrHelp is returned by Load when --help was asked for.
var ErrHelp = pflag.ErrHelp
