package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args, environ []string) (Config, error) {
	t.Helper()
	return Load(args, environ, io.Discard, func(string) {})
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ContainerLabel != "healme" || c.Policy.StopTimeout != 10*time.Second || c.HTTPAddress != "127.0.0.1" || c.NATSListen != "" || c.MaxConcurrentRestarts != 64 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLayersLowestFirst(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("http_port: 9000\nlog_level: warn\ncontainer_label: fromfile\nstop_timeout: 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file, "--log-level", "error"}, []string{"HMD_LOG_LEVEL=debug", "HMD_CONTAINER_LABEL=fromenv", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPPort != 9000 {
		t.Errorf("file did not set http_port: %d", c.HTTPPort)
	}
	if c.ContainerLabel != "fromenv" {
		t.Errorf("environment did not beat the file: %q", c.ContainerLabel)
	}
	if c.LogLevel != "error" {
		t.Errorf("flag did not beat the environment: %q", c.LogLevel)
	}
	if c.Policy.StopTimeout != 20*time.Second {
		t.Errorf("bare seconds in the file: %s", c.Policy.StopTimeout)
	}
	c, err = load(t, nil, []string{"HMD_CONFIG=" + file})
	if err != nil || c.HTTPPort != 9000 {
		t.Errorf("HMD_CONFIG: %v, port %d", err, c.HTTPPort)
	}
}

// NATS URLs as users write them pass: a list, each with or without a
// scheme, credentials included.
func TestNATSURLsThatWork(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"nats://healer:4222", "healer:4222", "tls://a:4222, wss://b:443", "nats://u:p@[::1]:4222", "ws://h"} {
		if err := checkNATSURLs("nats_url", u); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		environ []string
		key     string
		value   string
		source  string
	}{
		{"port not a number", nil, []string{"HMD_HTTP_PORT=abc"}, "http_port", "abc", "HMD_HTTP_PORT"},
		{"port out of range", []string{"--http-port", "70000"}, nil, "http_port", "70000", "--http-port"},
		{"negative concurrency", []string{"--max-concurrent-restarts=0"}, nil, "max_concurrent_restarts", "0", "--max-concurrent-restarts"},
		{"duration words", nil, []string{"HMD_STOP_TIMEOUT=soon"}, "stop_timeout", "soon", "HMD_STOP_TIMEOUT"},
		{"negative duration", []string{"--stop-timeout=-5s"}, nil, "stop_timeout", "-5s", "--stop-timeout"},
		{"log format", nil, []string{"HMD_LOG_FORMAT=xml"}, "log_format", "xml", "HMD_LOG_FORMAT"},
		{"bool", nil, []string{"HMD_DEBUG=sometimes"}, "debug", "sometimes", "HMD_DEBUG"},
		{"prefix without slash", []string{"--http-prefix", "healer"}, nil, "http_prefix", "healer", ""},
		{"empty label", nil, []string{"HMD_CONTAINER_LABEL="}, "container_label", "", ""},
		{"notify level", nil, []string{"DEFAULT_NOTIFY_LEVEL=LOUD"}, "notify_level", "LOUD", "DEFAULT_NOTIFY_LEVEL"},
		{"notify url", nil, []string{"HMD_NOTIFY_URL=hooks.example/T0/SECRET"}, "notify_url", "[redacted]", ""},
		{"nats url scheme", nil, []string{"HMD_NATS_URL=nats://ok:4222,bogus://u:hunter2@x:4222"}, "nats_url", "[not shown: it may hold a password]", ""},
		{"nats url that does not parse", []string{"--nats-url", "nats://u:hunter2@[::1"}, nil, "nats_url", "[not shown: it may hold a password]", ""},
		{"hub url without a host", nil, []string{"HMD_HUB_URL=tls://"}, "hub_url", "[not shown: it may hold a password]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.args, tt.environ)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if ce.Key != tt.key || ce.Value != tt.value || ce.Expected == "" || (tt.source != "" && ce.Source != tt.source) {
				t.Errorf("got %+v, want key %s value %q source %q", ce, tt.key, tt.value, tt.source)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") {
				t.Errorf("message spans lines: %q", msg)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("htp_port: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *Error
	if _, err := load(t, []string{"--config", file}, nil); !errors.As(err, &ce) || ce.Key != "htp_port" || ce.Source != file {
		t.Errorf("unknown key in file: %v", err)
	}
	var warned []string
	if _, err := Load(nil, []string{"HMD_HTP_PORT=1"}, io.Discard, func(w string) { warned = append(warned, w) }); err != nil {
		t.Fatalf("unknown environment variable is an error: %v", err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "HMD_HTP_PORT") {
		t.Errorf("warnings %q, want one naming HMD_HTP_PORT", warned)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if _, err := Load([]string{"--help"}, nil, &b, func(string) {}); !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v, want ErrHelp", err)
	}
	for _, s := range settings() {
		for _, want := range []string{"--" + FlagName(s.key), EnvName(s.key)} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("help lacks %s", want)
			}
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil, []string{"HMD_NATS_LISTEN=127.0.0.1:4222", "HMD_NATS_USER=u", "HMD_NATS_PASSWORD=hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.NATSPassword.String(); strings.Contains(s, "hunter2") {
		t.Errorf("secret printed as %q", s)
	}
	if c.NATSPassword.Reveal() != "hunter2" {
		t.Error("secret lost")
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		environ []string
		check   func(Config) bool
	}{
		{"Repairman env", nil, []string{"DEFAULT_FRAME_SIZE=450", "DEFAULT_MAX_RESTARTS_IN_FRAME=2", "NAMESPACE=app_", "DEFAULT_SECONDS_BETWEEN_NEXT_FRAME=1500"},
			func(c Config) bool {
				return c.Policy.FrameSize == 450*time.Second && c.Policy.MaxRestartsInFrame == 2 && c.Namespace == "app_" && c.Policy.BetweenFrames == 1500*time.Second
			}},
		{"Repairman switches", []string{"--frame-size-in-seconds", "100", "--enable-autoheal", "--enable-cleaning-duplicated-services"}, nil,
			func(c Config) bool {
				return c.Policy.FrameSize == 100*time.Second && c.ContainerLabel == "all" && c.Policy.CleanDuplicates
			}},
		{"DEFAULT_ENABLE_AUTO_HEAL", nil, []string{"DEFAULT_ENABLE_AUTO_HEAL=true"}, func(c Config) bool { return c.ContainerLabel == "all" }},
		{"autoheal env", nil, []string{"AUTOHEAL_CONTAINER_LABEL=autoheal", "AUTOHEAL_START_PERIOD=30", "AUTOHEAL_DEFAULT_STOP_TIMEOUT=20"},
			func(c Config) bool {
				return c.ContainerLabel == "autoheal" && c.Policy.StartGrace == 30*time.Second && c.Policy.StopTimeout == 20*time.Second
			}},
		{"native env beats alias env", nil, []string{"DEFAULT_FRAME_SIZE=450", "HMD_FRAME_SIZE=60"}, func(c Config) bool { return c.Policy.FrameSize == time.Minute }},
		{"native flag beats alias flag", []string{"--frame-size-in-seconds", "100", "--frame-size", "50"}, nil, func(c Config) bool { return c.Policy.FrameSize == 50*time.Second }},
		{"native label setting beats autoheal's", nil, []string{"AUTOHEAL_CONTAINER_LABEL=autoheal", "HMD_CONTAINER_LABEL=healme"}, func(c Config) bool { return c.ContainerLabel == "healme" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.args, tt.environ)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("aliases not applied: %+v", c)
			}
		})
	}
}

func TestLabelAliases(t *testing.T) {
	t.Parallel()
	base := policyDefaults(t)
	p, errs := PolicyFor(base, map[string]string{
		Repairman + "frame_size_in_seconds": "120",
		Repairman + "max_restarts_in_frame": "7",
		"autoheal.stop.timeout":             "3",
		"healme.max_restarts_in_frame":      "9",
	}, "healme")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.FrameSize != 2*time.Minute || p.StopTimeout != 3*time.Second || p.MaxRestartsInFrame != 9 {
		t.Errorf("label aliases: %+v (native healme.max_restarts_in_frame must win)", p)
	}
	for _, labels := range []map[string]string{{"autoheal": "true"}, {Repairman + "enable_autoheal": "true"}} {
		if !Selected(labels, "healme") {
			t.Errorf("%v not selected", labels)
		}
	}
	if Selected(map[string]string{"autoheal": "true", "healme": "false"}, "healme") {
		t.Error("healme=false must win over autoheal=true")
	}
}

func policyDefaults(t *testing.T) Policy {
	t.Helper()
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Policy
}

func TestNotifyURLFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "hooks")
	if err := os.WriteFile(f, []byte("https://hooks.example/a\nhttps://hooks.example/b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, nil, []string{"HMD_NOTIFY_URL=https://hooks.example/c", "HMD_NOTIFY_URL_FILE=" + f})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(c.NotifyURL.Reveal()); len(got) != 3 {
		t.Errorf("urls %q, want the one from the environment and two from the file", got)
	}
	var ce *Error
	if _, err := load(t, nil, []string{"HMD_NOTIFY_URL_FILE=/nonexistent/hooks"}); !errors.As(err, &ce) || ce.Key != "notify_url_file" {
		t.Errorf("missing file: %v", err)
	}
}

// The placeholders of deploy/split.env.example are refused, naming the
// setting; the example's every secret is one.
func TestPlaceholderSecretsAreRefused(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../deploy/split.env.example")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || !strings.HasPrefix(v, PlaceholderPrefix) {
			continue
		}
		n++
		_, err := Load(nil, []string{k + "=" + v}, io.Discard, func(string) {})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != strings.ToLower(strings.TrimPrefix(k, EnvPrefix)) || !strings.Contains(err.Error(), "split.env.example") {
			t.Errorf("%s=%s: %v, want it refused by name", k, v, err)
		}
	}
	if n < 3 {
		t.Errorf("found %d placeholders in split.env.example", n)
	}
}

// An unknown key in the file is named; its value is not echoed.
func TestUnknownFileKeyHidesValue(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("nats_pasword: hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", path}, nil, io.Discard, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "nats_pasword") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v, want the key named and its value hidden", err)
	}
}

// A prefix the routes cannot take is a config error, never a panic.
func TestBadHTTPPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"healer", "/", "/x/", "/a b", "/{x}"} {
		_, err := Load([]string{"--http-prefix", p}, nil, io.Discard, func(string) {})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "http_prefix" {
			t.Errorf("--http-prefix %q: %v, want an http_prefix error", p, err)
		}
	}
}

// A setting written with one dash, as Go's flag package takes it, is an
// unknown shorthand to pflag, whose error quotes the whole argument: the
// value, a password or a notify URL, must not be printed.
func TestOneDashFlagValueNotPrinted(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-nats-password=hunter2", "-notify-url=https://hooks.slack.com/services/hunter2", "--=hunter2"} {
		_, err := load(t, []string{arg}, nil)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v", arg, err)
		}
	}
	_, err := load(t, []string{"-nats-password=hunter2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--nats-password") {
		t.Errorf("the error does not name the flag as it is spelt: %v", err)
	}
}
