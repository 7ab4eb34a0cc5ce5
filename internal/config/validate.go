package config

import (
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/healmydocker/healmydocker/internal/httpapi"
)

// validate checks what single values cannot, and reads the files that
// settings name.
func validate(c *Config) error {
	if c.DataDir == "" {
		return &Error{Key: "data_dir", Value: "", Expected: "a directory"}
	}
	if c.ContainerLabel == "" {
		return &Error{Key: "container_label", Value: "", Expected: "a label name, or all"}
	}
	if err := httpapi.ValidPrefix(c.HTTPPrefix); err != nil {
		return &Error{Key: "http_prefix", Value: c.HTTPPrefix, Expected: err.Error()}
	}
	if c.NotifyURLFile != "" {
		b, err := os.ReadFile(c.NotifyURLFile)
		if err != nil {
			return &Error{Key: "notify_url_file", Value: c.NotifyURLFile, Expected: "a readable file of URLs (" + err.Error() + ")"}
		}
		c.NotifyURL = Secret(strings.TrimSpace(c.NotifyURL.Reveal() + " " + string(b)))
	}
	for _, u := range strings.FieldsFunc(c.NotifyURL.Reveal(), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		// Services are checked when the notifier builds its targets; here
		// that it is a well-formed URL of a known scheme.
		if CheckNotifyURL(u) != nil {
			return &Error{Key: "notify_url", Value: "[redacted]", Expected: "URLs: an http(s) incoming webhook (Slack, Mattermost) or a Shoutrrr service URL"}
		}
	}
	if c.NATSListen != "" && (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return &Error{Key: "nats_tls_cert", Value: c.NATSTLSCert, Expected: "nats_tls_cert and nats_tls_key together"}
	}
	if err := refusePlaceholders(c); err != nil {
		return err
	}
	if err := checkNATSURLs("nats_url", c.NATSURL); err != nil {
		return err
	}
	if err := checkNATSURLs("hub_url", c.HubURL.Reveal()); err != nil {
		return err
	}
	// Only the process that listens serves the reader: a split notifier
	// may share its env file and ignore it.
	if c.NATSListen != "" && c.NATSReaderUser != "" && (c.NATSReaderPassword == "" || c.NATSToken != "" || c.NATSUser == "") {
		return &Error{Key: "nats_reader_user", Value: c.NATSReaderUser, Expected: "nats_reader_password, and nats_user with nats_password (not nats_token), to be set too"}
	}
	if c.NATSListen != "" && c.NATSToken == "" && (c.NATSUser == "" || c.NATSPassword == "") {
		return &Error{Key: "nats_listen", Value: c.NATSListen, Expected: "nats_user and nats_password, or nats_token, to be set too"}
	}
	return nil
}

// PlaceholderPrefix starts every secret in deploy/split.env.example; a
// deployment that kept one would run with a password anyone can read.
const PlaceholderPrefix = "change-me"

func refusePlaceholders(c *Config) error {
	for _, s := range []struct {
		key string
		v   Secret
	}{
		{"nats_password", c.NATSPassword}, {"nats_reader_password", c.NATSReaderPassword}, {"nats_token", c.NATSToken},
		{"http_token", c.HTTPToken}, {"hub_password", c.HubPassword},
	} {
		if strings.HasPrefix(strings.TrimSpace(s.v.Reveal()), PlaceholderPrefix) {
			return &Error{Key: s.key, Value: "[placeholder]", Expected: "a secret of your own: this is the placeholder from deploy/split.env.example (try: openssl rand -hex 24)"}
		}
	}
	return nil
}

// checkNATSURLs checks a comma list of NATS server URLs as the client and
// the leaf node take them: nats://, tls://, ws:// or wss://, or host:port
// alone. Caught here, a typo is bad configuration (exit 2), not a failed
// connection; the value may hold a password, so it is not repeated.
func checkNATSURLs(key, list string) error {
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		parsed, err := url.Parse(u)
		why := ""
		switch {
		case err != nil:
			why = "a URL that parses"
		case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, strings.ToLower(parsed.Scheme)):
			why = "the scheme nats://, tls://, ws:// or wss:// (not " + strings.ToLower(parsed.Scheme) + "://)"
		case parsed.Hostname() == "":
			why = "a host"
		}
		if why != "" {
			return &Error{Key: key, Value: "[not shown: it may hold a password]", Expected: "NATS server URLs separated by commas, each with " + why}
		}
	}
	return nil
}
