package notify

import (
	"context"
	"strings"
	"testing"
)

// Shoutrrr quotes a bad token in its error: the target's error must not.
func TestShoutrrrErrorsDoNotRepeatTheToken(t *testing.T) {
	t.Parallel()
	s, err := NewShoutrrr("gotify://127.0.0.1:1/Atok3n?title=x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Notify(context.Background(), "hello")
	if err == nil || strings.Contains(err.Error(), "Atok3n") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error: %v", err)
	}
}

func TestURLSecrets(t *testing.T) {
	t.Parallel()
	got := strings.Join(urlSecrets("smtp://user1:pa55w0rd@mail.example:25/?fromAddress=a@b.example&toAddresses=c@d.example"), " ")
	for _, want := range []string{"user1", "pa55w0rd", "a@b.example", "c@d.example"} {
		if !strings.Contains(got, want) {
			t.Errorf("secrets %q lack %q", got, want)
		}
	}
}
