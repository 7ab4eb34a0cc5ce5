package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecideHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stored, configured string
		want                     string
		wantChanged, wantDerived bool
	}{
		{name: "first start derives", want: "docker-name", wantDerived: true},
		{name: "stored wins over deriving", stored: "web1", want: "web1"},
		{name: "configured on first start", configured: "web1", want: "web1"},
		{name: "configured same as stored", stored: "web1", configured: "web1", want: "web1"},
		{name: "configured changes it on purpose", stored: "web1", configured: "web2", want: "web2", wantChanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			derived := false
			got, changed := decideHost(tt.stored, tt.configured, func() string { derived = true; return "docker-name" })
			if got != tt.want || changed != tt.wantChanged || derived != tt.wantDerived {
				t.Errorf("decideHost(%q, %q) = %q, changed %v, derived %v; want %q, %v, %v", tt.stored, tt.configured, got, changed, derived, tt.want, tt.wantChanged, tt.wantDerived)
			}
		})
	}
}

// A slow Docker at the second start must not fork the history: the name
// stored at the first start is used, and Docker is not asked.
func TestHostIdentityStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if got := hostIdentity(dir, "", func() string { return "daemon-a" }, log); got != "daemon-a" {
		t.Fatalf("first start: %q", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, hostFile))
	if err != nil || strings.TrimSpace(string(b)) != "daemon-a" {
		t.Fatalf("stored name: %q, %v", b, err)
	}
	got := hostIdentity(dir, "", func() string { t.Error("derived again despite a stored name"); return "os-host" }, log)
	if got != "daemon-a" {
		t.Fatalf("second start: %q, want the stored daemon-a", got)
	}
	// Renaming on purpose is allowed, logged with both names, and kept.
	if got := hostIdentity(dir, "web2", nil, log); got != "web2" {
		t.Fatalf("configured: %q", got)
	}
	if !strings.Contains(logs.String(), "old=daemon-a new=web2") {
		t.Errorf("rename not logged with old and new names:\n%s", logs.String())
	}
	if got := hostIdentity(dir, "", nil, log); got != "web2" {
		t.Fatalf("after rename: %q, want web2 kept", got)
	}
}

// A data dir that cannot take the name does not stop the start.
func TestHostIdentityUnwritable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	got := hostIdentity(dir, "", func() string { return "daemon-a" }, slog.New(slog.NewTextHandler(&logs, nil)))
	if got != "daemon-a" || !strings.Contains(logs.String(), "cannot store the host name") {
		t.Errorf("got %q, logs:\n%s", got, logs.String())
	}
}
