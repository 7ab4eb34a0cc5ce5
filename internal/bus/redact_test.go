package bus

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// The URLs that a user may get wrong, with credentials in them: none of the
// secrets may show in what is printed about them.
var urlsWithSecrets = []struct {
	name, url, want string
}{
	{"scheme", "nats://u:hunter2@127.0.0.1:1", "nats://[redacted]@127.0.0.1:1"},
	{"token", "nats://hunter2@127.0.0.1:1", "nats://[redacted]@127.0.0.1:1"},
	{"no scheme", "u:hunter2@127.0.0.1:1", "[redacted]@127.0.0.1:1"},
	{"a list", "nats://u:hunter2@127.0.0.1:1,nats://v:hunter2@127.0.0.1:2", "nats://[redacted]@127.0.0.1:1,nats://[redacted]@127.0.0.1:2"},
	{"an @ in the password", "nats://u:hun@ter2@127.0.0.1:1", "nats://[redacted]@127.0.0.1:1"},
	{"no credentials", "nats://127.0.0.1:1", "nats://127.0.0.1:1"},
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range urlsWithSecrets {
		if got := redactURL(tc.url); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A URL that does not parse is echoed by url.Parse's error; Connect's
// error must not carry its credentials (the split binaries log it).
func TestConnectErrorHidesCredentials(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, u := range []string{
		"nats://u:hunter2@[::1",
		"nats://u:hunter2%zz@127.0.0.1:1",
		"u:hunter2@127.0.0.1:1",
		"nats://u:hunter2@127.0.0.1:1,nats://v:hunter2@[::1",
	} {
		_, err := Connect(u, "", "", "", "test", TLS{}, log)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", u, err)
		}
	}
}

func TestLeafRemoteErrorHidesCredentials(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"u:hunter2@hub:7422", "nats://u:hunter2@[::1", "http://u:hunter2@hub:7422"} {
		_, err := leafRemote(u, "", "")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", u, err)
		}
	}
}
