package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A --url with a password in it (a proxy's basic auth) is not printed
// with the password when the healer cannot be asked.
func TestControlHidesTheURLsPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://u:hunter2@127.0.0.1:1", "http://u:hunter2@[::1", "http://u:hunter2%zz@127.0.0.1:1"} {
		var out, errb bytes.Buffer
		code := Control(context.Background(), "pause", []string{"--url=" + u, "web"}, nil, &out, &errb)
		if code != 1 || strings.Contains(errb.String(), "hunter2") || !strings.Contains(errb.String(), "healer pause: ") {
			t.Errorf("%s: exit %d, stderr %q", u, code, errb.String())
		}
	}
}
