package config

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// setting is one configuration key.
type setting struct {
	key      string
	def      string
	help     string
	expected string
	// perContainer settings can be overridden by a label <label>.<key>.
	perContainer bool
	// flagBool makes --flag alone mean true.
	flagBool bool
	set      func(c *Config, v string) error
	// Aliases from other healers, so users can switch without relabelling;
	// native names win over them.
	envAliases, flagAliases, labelAliases []string
}

func (s setting) container() setting           { s.perContainer = true; return s }
func (s setting) env(names ...string) setting  { s.envAliases = names; return s }
func (s setting) flag(names ...string) setting { s.flagAliases = names; return s }
func (s setting) label(names ...string) setting {
	s.labelAliases = names
	return s
}

// EnvName is the environment variable of a key.
func EnvName(key string) string { return EnvPrefix + strings.ToUpper(key) }

// FlagName is the command-line flag of a key.
func FlagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

func str(key, def, help string, f func(*Config) *string) setting {
	return setting{key: key, def: def, help: help, expected: "a string", set: func(c *Config, v string) error {
		*f(c) = v
		return nil
	}}
}

func secret(key, help string, f func(*Config) *Secret) setting {
	return setting{key: key, help: help, expected: "a string", set: func(c *Config, v string) error {
		*f(c) = Secret(v)
		return nil
	}}
}

func integer(key string, def, lo, hi int, help string, f func(*Config) *int) setting {
	exp := fmt.Sprintf("an integer from %d to %d", lo, hi)
	return setting{key: key, def: strconv.Itoa(def), help: help, expected: exp, set: func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return errors.New(exp)
		}
		*f(c) = n
		return nil
	}}
}

// byteSize reads 256MB, 1GiB, 300k or a number of bytes (KB, MB are 1024-based).
func byteSize(key, def string, lo, hi int64, help string, f func(*Config) *int64) setting {
	exp := fmt.Sprintf("a size from %s to %s, such as 256MB", units.BytesSize(float64(lo)), units.BytesSize(float64(hi)))
	return setting{key: key, def: def, help: help, expected: exp, set: func(c *Config, v string) error {
		n, err := units.RAMInBytes(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return errors.New(exp)
		}
		*f(c) = n
		return nil
	}}
}

func boolean(key string, def bool, help string, f func(*Config) *bool) setting {
	return setting{key: key, def: strconv.FormatBool(def), help: help, expected: "true or false", flagBool: true, set: func(c *Config, v string) error {
		b, ok := ParseBool(v)
		if !ok {
			return errors.New(boolExpected)
		}
		*f(c) = b
		return nil
	}}
}

func enum(key, def string, values []string, help string, f func(*Config) *string) setting {
	exp := "one of " + strings.Join(values, ", ")
	return setting{key: key, def: def, help: help, expected: exp, set: func(c *Config, v string) error {
		v = strings.ToLower(strings.TrimSpace(v))
		if !slices.Contains(values, v) {
			return errors.New(exp)
		}
		*f(c) = v
		return nil
	}}
}

// duration accepts Go durations ("90s", "5m") and bare numbers of seconds.
func duration(key, def string, lo, hi time.Duration, help string, f func(*Config) *time.Duration) setting {
	exp := fmt.Sprintf("a duration from %s to %s (such as 10s, or 10 for seconds)", lo, hi)
	return setting{key: key, def: def, help: help, expected: exp, set: func(c *Config, v string) error {
		d, err := ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return errors.New(exp)
		}
		*f(c) = d
		return nil
	}}
}

// ParseDuration reads "10s"-style durations and bare seconds ("10", "1.5").
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > float64(1<<62)/float64(time.Second) || f < -float64(1<<62)/float64(time.Second) {
			return 0, fmt.Errorf("duration %q out of range", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

func settings() []setting {
	ss := []setting{
		str("data_dir", "data", "directory of the event store (JetStream) and its lock", func(c *Config) *string { return &c.DataDir }),
		str("container_label", "healme", "label that selects containers: <label>=true; the value all selects every container", func(c *Config) *string { return &c.ContainerLabel }).env("AUTOHEAL_CONTAINER_LABEL"),
		str("namespace", "", "heal only containers whose name starts with this prefix", func(c *Config) *string { return &c.Namespace }).env("NAMESPACE"),
		secret("hub_url", "nats://host:port of a hub's leaf-node listener: this healer joins the fleet as a leaf node (default: none)", func(c *Config) *Secret { return &c.HubURL }),
		str("hub_user", "", "user of the hub's leaf-node listener", func(c *Config) *string { return &c.HubUser }),
		secret("hub_password", "password of hub_user", func(c *Config) *Secret { return &c.HubPassword }),
		str("hub_domain", "hub", "JetStream domain of the hub", func(c *Config) *string { return &c.HubDomain }),
		str("hub_stream", "HMD_FLEET", "the hub's stream that sources every host's events", func(c *Config) *string { return &c.HubStream }),
		str("events_stream", "HMD_EVENTS", "the stream that the notifier and `healer events` read: HMD_FLEET on a hub", func(c *Config) *string { return &c.EventsStream }),
		str("host_name", "", "host name in subjects and event sources (default: the Docker daemon's name)", func(c *Config) *string { return &c.HostName }),
		integer("max_concurrent_restarts", 64, 1, 10000, "restarts of different containers that may run at once", func(c *Config) *int { return &c.MaxConcurrentRestarts }),
		duration("max_label_stop_timeout", "5m", 0, 24*time.Hour, "longest stop timeout that a container's <label>.stop_timeout may ask for", func(c *Config) *time.Duration { return &c.MaxLabelStopTimeout }),
		str("http_address", "127.0.0.1", "address of the HTTP endpoint", func(c *Config) *string { return &c.HTTPAddress }),
		integer("http_port", 8380, 0, 65535, "port of the HTTP endpoint (0: no HTTP endpoint)", func(c *Config) *int { return &c.HTTPPort }),
		integer("http_max_streams", 16, 1, 10000, "live event streams (the page's) the HTTP endpoint serves at once; more get 503", func(c *Config) *int { return &c.HTTPMaxStreams }),
		secret("http_token", "bearer token that the HTTP endpoint requires for everything but /healthz (default: none)", func(c *Config) *Secret { return &c.HTTPToken }),
		str("http_prefix", "", "path prefix of the HTTP endpoint, such as /healer", func(c *Config) *string { return &c.HTTPPrefix }),
		enum("log_format", "text", []string{"text", "json"}, "log format: text or json", func(c *Config) *string { return &c.LogFormat }),
		enum("log_level", "info", []string{"debug", "info", "warn", "error"}, "log level: debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		boolean("debug", false, "shorthand for log_level=debug", func(c *Config) *bool { return &c.Debug }),
		duration("docker_reconcile_interval", "60s", 0, 24*time.Hour, "how often unhealthy containers are listed to catch events the daemon dropped (0: never)", func(c *Config) *time.Duration { return &c.DockerReconcileInterval }),
		duration("docker_ping_interval", "5s", 100*time.Millisecond, time.Hour, "how often the daemon is pinged to notice that it is gone", func(c *Config) *time.Duration { return &c.DockerPingInterval }),
		duration("docker_timeout", "10s", 100*time.Millisecond, 10*time.Minute, "how long a ping, inspect, list or connect may take before the daemon counts as hung (the healer reconnects and /readyz says 503)", func(c *Config) *time.Duration { return &c.DockerTimeout }),
		duration("shutdown_timeout", "10s", time.Second, 10*time.Minute, "how long the healer takes at most to stop, restarts in flight or not; what is queued is flushed within it", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		duration("retention", "720h", 0, 100*365*24*time.Hour, "how long events are kept (0: for ever)", func(c *Config) *time.Duration { return &c.Retention }),
		byteSize("events_max_bytes", "256MB", 1<<20, 1<<50, "bytes the events stream keeps on disk; the oldest events go first", func(c *Config) *int64 { return &c.EventsMaxBytes }),
		byteSize("history_max_bytes", "64MB", 1<<20, 1<<50, "bytes the per-container history keeps on disk, all containers together; the oldest go first", func(c *Config) *int64 { return &c.HistoryMaxBytes }),
		secret("notify_url", "incoming-webhook URLs (Slack, Mattermost) to notify, separated by commas or spaces", func(c *Config) *Secret { return &c.NotifyURL }).env("DEFAULT_NOTIFY_URL"),
		str("notify_url_file", "", "file holding notify URLs (a Docker secret), added to notify_url", func(c *Config) *string { return &c.NotifyURLFile }),
		enum("notify_level", "info", []string{"debug", "info", "warning"}, "what is notified: debug, info or warning", func(c *Config) *string { return &c.NotifyLevel }).env("DEFAULT_NOTIFY_LEVEL"),
		duration("notify_group_wait", "5s", 0, time.Hour, "events for one target within this time go out as one message", func(c *Config) *time.Duration { return &c.NotifyGroupWait }),
		duration("notify_max_backoff", "1m", time.Second, time.Hour, "the longest wait between retries of a target that fails (it is retried until it takes the message)", func(c *Config) *time.Duration { return &c.NotifyMaxBackoff }),
		str("notify_username", "HealMyDocker", "username of Mattermost messages", func(c *Config) *string { return &c.NotifyUsername }),
		str("notify_label_targets", "", "which notify_url labels are followed: empty for any, off for none, or a comma list of allowed schemes and hosts", func(c *Config) *string { return &c.Policy.NotifyLabelTargets }),
		str("notify_template_file", "", "Go text/template file for messages (default: one line per event)", func(c *Config) *string { return &c.NotifyTemplateFile }),
		str("nats_listen", "", "host:port of a NATS listener for split mode and subscribers (default: none)", func(c *Config) *string { return &c.NATSListen }),
		str("nats_url", "", "NATS URL of the healer, for the split notifier and cleaner", func(c *Config) *string { return &c.NATSURL }),
		str("nats_user", "", "user that the NATS listener requires", func(c *Config) *string { return &c.NATSUser }),
		secret("nats_password", "password that the NATS listener requires", func(c *Config) *Secret { return &c.NATSPassword }),
		secret("nats_token", "token that the NATS listener requires (instead of user and password)", func(c *Config) *Secret { return &c.NATSToken }),
		str("nats_reader_user", "", "a NATS user that may read the events and their history and nothing else, for subscribers", func(c *Config) *string { return &c.NATSReaderUser }),
		secret("nats_reader_password", "password of nats_reader_user", func(c *Config) *Secret { return &c.NATSReaderPassword }),
		str("nats_tls_cert", "", "PEM certificate: of the NATS listener (with nats_tls_key it turns TLS on), or a client's own for a listener that verifies clients", func(c *Config) *string { return &c.NATSTLSCert }),
		str("nats_tls_key", "", "PEM key of nats_tls_cert", func(c *Config) *string { return &c.NATSTLSKey }),
		str("nats_tls_ca", "", "PEM CA: on the listener it verifies client certificates (required then); on a client it verifies the listener", func(c *Config) *string { return &c.NATSTLSCA }),
	}
	const month = 31 * 24 * time.Hour
	rm := Repairman
	pol := []setting{
		duration("stop_timeout", "10s", 0, time.Hour, "time a container gets to stop before it is killed, on restart", func(c *Config) *time.Duration { return &c.Policy.StopTimeout }).
			env("AUTOHEAL_DEFAULT_STOP_TIMEOUT").label("autoheal.stop.timeout"),
		duration("seconds_between_restarts", "15", 0, month, "least time between two restarts of one container", func(c *Config) *time.Duration { return &c.Policy.BetweenRestarts }).
			env("DEFAULT_SECONDS_BETWEEN_RESTARTS").label(rm + "seconds_between_restarts"),
		duration("frame_size", "300", time.Second, month, "window in which at most max_restarts_in_frame restarts happen", func(c *Config) *time.Duration { return &c.Policy.FrameSize }).
			env("DEFAULT_FRAME_SIZE").flag("frame-size-in-seconds").label(rm + "frame_size_in_seconds"),
		integer("max_restarts_in_frame", 3, 1, 1_000_000, "restarts allowed within one frame", func(c *Config) *int { return &c.Policy.MaxRestartsInFrame }).
			env("DEFAULT_MAX_RESTARTS_IN_FRAME").label(rm + "max_restarts_in_frame"),
		duration("seconds_between_next_frame", "600", 0, month, "wait after a frame is used up before healing again", func(c *Config) *time.Duration { return &c.Policy.BetweenFrames }).
			env("DEFAULT_SECONDS_BETWEEN_NEXT_FRAME").label(rm + "seconds_between_next_frame"),
		integer("max_checks_to_give_up", 50, 0, 1_000_000, "restarts without staying healthy before the healer gives up (0: never)", func(c *Config) *int { return &c.Policy.GiveUpAfterRestarts }).
			env("DEFAULT_MAX_CHECKS_TO_GIVE_UP").label(rm + "max_checks_to_give_up"),
		enum("backoff", BackoffFrames, []string{BackoffFrames, BackoffExponential}, "frames (Repairman's rules) or exponential (like the kubelet)", func(c *Config) *string { return &c.Policy.Backoff }),
		duration("backoff_initial", "10s", 0, month, "exponential backoff: first wait", func(c *Config) *time.Duration { return &c.Policy.BackoffInitial }),
		duration("backoff_max", "300s", 0, month, "exponential backoff: longest wait", func(c *Config) *time.Duration { return &c.Policy.BackoffMax }),
		duration("backoff_reset", "600s", 0, month, "exponential backoff: health that resets it", func(c *Config) *time.Duration { return &c.Policy.BackoffReset }),
		duration("start_grace", "0", 0, month, "no healing this soon after a container starts", func(c *Config) *time.Duration { return &c.Policy.StartGrace }).
			env("AUTOHEAL_START_PERIOD"),
		boolean("heal_exited", true, "also start a container that died with a non-zero exit code or OOM, unless a user stopped it or its restart policy restarts it", func(c *Config) *bool { return &c.Policy.HealExited }),
		boolean("heal_exit_zero", false, "with heal_exited, also start containers that exited with code 0", func(c *Config) *bool { return &c.Policy.HealExitZero }),
		boolean("restart_dependents", true, "restart containers with network_mode container:<healed one> after it", func(c *Config) *bool { return &c.Policy.RestartDependents }),
		boolean("recreate", true, "recreate a container with network_mode container:<id> on the new container when its parent is recreated (false: only report it)", func(c *Config) *bool { return &c.Policy.Recreate }),
		integer("max_historic_entries", 50, 1, 100_000, "events kept per container", func(c *Config) *int { return &c.Policy.MaxHistoricEntries }).
			env("DEFAULT_MAX_HISTORIC_ENTRIES").label(rm + "max_historic_entries"),
		enum("action", ActionRestart, []string{ActionRestart, ActionStop, ActionNotify, ActionNone}, "what healing does: restart, stop (and leave stopped), notify (decide and tell, touch nothing) or none (record only)", func(c *Config) *string { return &c.Policy.Action }),
		boolean("clean_duplicates", false, "remove the duplicate containers docker-compose leaves behind (<12 hex>_<name>)", func(c *Config) *bool { return &c.Policy.CleanDuplicates }).
			env("ENABLE_CLEANING_DUPLICATED_SERVICES", "DEFAULT_ENABLE_DUPLICATED_SERVICES_REMOVING").flag("enable-cleaning-duplicated-services").label(rm + "enable_cleaning_duplicated_services"),
		integer("notify_log_lines", 10, 0, 200, "last lines of the container's log that a crash or unhealthy restart carries in its event and message (0: none)", func(c *Config) *int { return &c.Policy.NotifyLogLines }),
	}
	for _, p := range pol {
		ss = append(ss, p.container())
	}
	return append(ss,
		duration("clean_grace", "60s", 0, month, "a duplicate younger than this is left alone, so a running compose up is never raced", func(c *Config) *time.Duration { return &c.CleanGrace }),
		duration("clean_interval", "10m", time.Second, month, "how often the cleaner sweeps, besides at start and on container events", func(c *Config) *time.Duration { return &c.CleanInterval }),
		boolean("dry_run", false, "monitor only: decide and publish as if healing (dry_run: true), send nothing to Docker", func(c *Config) *bool { return &c.Policy.DryRun }),
		boolean("clean_dry_run", false, "publish what the cleaner would remove, and remove nothing", func(c *Config) *bool { return &c.CleanDryRun }),
		boolean("run_notifier", true, "run the notifier inside the healer; set false when a separate notifier process serves the targets", func(c *Config) *bool { return &c.RunNotifier }),
		boolean("run_cleaner", false, "run the cleaner inside the healer even with clean_duplicates off, for containers whose label turns it on", func(c *Config) *bool { return &c.RunCleaner }),
	)
}

func known(ss []setting, key string) bool {
	return slices.ContainsFunc(ss, func(s setting) bool { return s.key == key })
}

func writeHelp(out io.Writer, program string, ss []setting) {
	if program == "healer" {
		fmt.Fprintf(out, "Usage: healer [flags]\n       healer healthcheck [flags]\n       healer --version\n\n")
	} else {
		fmt.Fprintf(out, "Usage: %s [flags]\n       %s --version\n\n", program, program)
	}
	fmt.Fprintf(out, "Each setting is a flag, an environment variable, and a key in the --config YAML file.\n")
	fmt.Fprintf(out, "Layers, lowest first: defaults, file, environment, flags.\n\n")
	fmt.Fprintf(out, "  %-32s %-32s %-10s %s\n", "flag", "environment", "default", "meaning")
	fmt.Fprintf(out, "  %-32s %-32s %-10s %s\n", "--config", "HMD_CONFIG", "", "YAML file of settings")
	for _, s := range ss {
		help := s.help
		if s.perContainer {
			help += " (label <label>." + s.key + " overrides it)"
		}
		fmt.Fprintf(out, "  %-32s %-32s %-10s %s\n", "--"+FlagName(s.key), EnvName(s.key), s.def, help)
	}
}

// Help writes the settings table, for README and --help.
func Help(out io.Writer) { writeHelp(out, "healer", settings()) }
