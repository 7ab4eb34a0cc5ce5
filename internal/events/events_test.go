package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestGoldenJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 3, 4, 5, 123456789, time.UTC)
	code := 3
	obs := Observed{
		Kind: DockerUnhealthy, ContainerID: "3931e19f73979d5d0ad6dfe3b3a7f1f0b1c8c0e7d6a1e4b2c9f0a1b2c3d4e5f6",
		Name: "app.web.1", Image: "example/web:1.2", DockerTime: at,
	}
	cause := obs.ID("host-1")
	tests := []struct {
		name string
		ev   Event
	}{
		{"observed_unhealthy", obs.Event("host-1")},
		{"observed_die", Observed{Kind: DockerDie, ContainerID: obs.ContainerID, Name: "app.web.1", Image: "example/web:1.2", ExitCode: &code, DockerTime: at}.Event("host-1")},
		{"restart_requested", New(RestartRequested, DerivedID(cause, RestartRequested), at, "app.web.1", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "app.web.1", Image: "example/web:1.2", Cause: cause, Reason: "health_status: unhealthy",
		})},
		{"restart_failed", New(RestartFailed, DerivedID(cause, RestartFailed), at, "app.web.1", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "app.web.1", Cause: cause, Reason: "health_status: unhealthy",
			Error: "restart 3931e19f7397 (stop timeout 10s): context deadline exceeded", DurationMS: 10000.5,
		})},
		{"restart_succeeded_log_tail", New(RestartSucceeded, DerivedID(cause, RestartSucceeded), at, "app.web.1", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "app.web.1", Cause: cause, Reason: "health_status: unhealthy",
			DurationMS: 512.25, Attempt: 1, FrameRestarts: 1, Output: "db: connection refused",
			LogTail: "GET /healthz 500\nerror: db: connection refused",
		})},
		{"healer_degraded", New(Degraded, "7d1c6a0e-3b5f-4f1e-8c2a-9e0d1f2a3b4c", at, "", Data{Host: "host-1", Reason: "store: write data/.hmd-probe: no space left on device"})},
		{"healer_panic", New(HealerPanic, "0c7e9d3a-51d4-4f0e-9b8e-2a6f4c1d7e90", at, "", Data{Host: "host-1", Reason: "notify runner notify-3f2a", Error: "label value is not valid UTF-8"})},
		{"recreate_requested", New(RecreateRequested, DerivedID(cause, RecreateRequested), at, "vpn-app", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "vpn-app", Cause: cause, Reason: "its network parent vpn was recreated", Parent: "vpn",
		})},
		{"recreated", New(Recreated, DerivedID(cause, Recreated), at, "vpn-app", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "vpn-app", Cause: cause, Reason: "its network parent vpn was recreated", Parent: "vpn",
			NewContainerID: "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b", DurationMS: 850.25,
		})},
		{"recreate_failed", New(RecreateFailed, DerivedID(cause, RecreateFailed), at, "vpn-app", Data{
			Host: "host-1", ContainerID: obs.ContainerID, Container: "vpn-app", Cause: cause, Reason: "its network parent vpn was recreated", Parent: "vpn",
			Error: "recreate vpn-app: POST /containers/create: 403 Forbidden",
		})},
		{"healer_started", New(HealerStarted, "5b0f2f8e-7c1e-4a57-9a0b-1f1c2d3e4f50", at, "", Data{Host: "host-1", Version: "1.0.0"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.MarshalIndent(tt.ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("JSON of %s changed; if intended, run go test -update and bump SchemaVersion if incompatible\ngot:\n%s\nwant:\n%s", tt.name, got, want)
			}
			back, err := Unmarshal(got)
			if err != nil {
				t.Fatalf("decode own output: %v", err)
			}
			if back.Kind() == "" || back.ID != tt.ev.ID || back.NATSSubject() != tt.ev.NATSSubject() {
				t.Errorf("round trip: got %+v", back)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, host, container string
		kind                  Kind
		want                  string
	}{
		{"plain", "host1", "web-1", DockerUnhealthy, "hmd.host1.web-1.docker.health_unhealthy"},
		{"dots in names", "h.example.org", "app.web.1", RestartSucceeded, "hmd.h_example_org.app_web_1.outcome.restart_succeeded"},
		{"wildcards", "*", "a>b", RestartRequested, "hmd._.a_b.decision.restart_requested"},
		{"healer itself", "h", "", HealerStarted, "hmd.h._.healer.started"},
		{"unicode and spaces", "hôte", "my app", DockerDie, "hmd.h_te.my_app.docker.die"},
		{"empty host", "", "c", DockerStart, "hmd._.c.docker.start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Subject(tt.host, tt.container, tt.kind); got != tt.want {
				t.Errorf("Subject(%q, %q, %s) = %q, want %q", tt.host, tt.container, tt.kind, got, tt.want)
			}
		})
	}
}

func TestDockerEventIDIsDeterministic(t *testing.T) {
	t.Parallel()
	a := DockerEventID("h", "abcdef0123456789", DockerDie, 42)
	if b := DockerEventID("h", "abcdef0123456789", DockerDie, 42); a != b {
		t.Errorf("same event, ids %q and %q", a, b)
	}
	for _, other := range []string{
		DockerEventID("h2", "abcdef0123456789", DockerDie, 42),
		DockerEventID("h", "bbcdef0123456789", DockerDie, 42),
		DockerEventID("h", "abcdef0123456789", DockerKill, 42),
		DockerEventID("h", "abcdef0123456789", DockerDie, 43),
	} {
		if other == a {
			t.Errorf("different events share id %q", a)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"not json", "{"},
		{"truncated", `{"specversion":"1.0","id":"x","type":"io.healmydocker.v1.docker.die"`},
		{"wrong specversion", `{"specversion":"0.3","id":"x","type":"io.healmydocker.v1.docker.die"}`},
		{"no id", `{"specversion":"1.0","type":"io.healmydocker.v1.docker.die"}`},
		{"foreign type", `{"specversion":"1.0","id":"x","type":"com.example.thing"}`},
		{"unknown kind", `{"specversion":"1.0","id":"x","type":"io.healmydocker.v1.docker.explode"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Unmarshal([]byte(tt.in)); err == nil {
				t.Errorf("Unmarshal(%s) accepted it", tt.in)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.healmydocker.v1.docker.die","data":{"host":"h","exit_code":3}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		// Whatever decodes must have a subject NATS accepts.
		s := e.NATSSubject()
		if bytes.ContainsAny([]byte(s), " *>\t\n") {
			t.Errorf("subject %q has characters NATS forbids", s)
		}
	})
}

func FuzzSanitizeToken(f *testing.F) {
	for _, s := range []string{"", "a.b", "*", ">", "hôte", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := SanitizeToken(s)
		if tok == "" || bytes.ContainsAny([]byte(tok), ". *>\t\r\n") {
			t.Errorf("SanitizeToken(%q) = %q: not one NATS token", s, tok)
		}
	})
}
