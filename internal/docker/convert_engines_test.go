package docker

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/events"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files of Convert from the recorded events")

// converted is what Convert made of one recorded event, in a form that
// diffs well.
type converted struct {
	Action      string            `json:"action"`
	Kind        hmd.Kind          `json:"kind,omitempty"`
	ContainerID string            `json:"container_id,omitempty"`
	Name        string            `json:"name,omitempty"`
	Image       string            `json:"image,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	ExitCode    *int              `json:"exit_code,omitempty"`
	Signal      string            `json:"signal,omitempty"`
	DockerTime  int64             `json:"docker_time_ns,omitempty"`
}

// recording is one file of testdata/events: the container events of one
// scenario (test/engine/record) as an engine sent them at one API version,
// named ENGINE-apiVERSION.jsonl.
type recording struct {
	path, engine, api string
	raw               []map[string]any
	msgs              []events.Message
}

func recordings(t *testing.T) []recording {
	t.Helper()
	paths, err := filepath.Glob("testdata/events/*.jsonl")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no recorded events in testdata/events: %v", err)
	}
	var out []recording
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), ".jsonl")
		engine, api, ok := strings.Cut(base, "-api")
		if !ok {
			t.Fatalf("%s: name it ENGINE-apiVERSION.jsonl", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r := recording{path: p, engine: engine, api: api}
		for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var raw map[string]any
			var m events.Message
			if err := json.Unmarshal(line, &raw); err != nil {
				t.Fatalf("%s:%d: %v", p, i+1, err)
			}
			// As the client decodes the stream.
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%s:%d: %v", p, i+1, err)
			}
			r.raw, r.msgs = append(r.raw, raw), append(r.msgs, m)
		}
		out = append(out, r)
	}
	return out
}

// Convert on the events of each engine (Docker 20.10 and 29, at old and
// current API versions) gives what the golden file says, and what it gives
// holds whatever the engine: the container's ID from Actor.ID, its name,
// the daemon's time to the nanosecond from timeNano, exit codes and signals.
func TestConvertRecordedEvents(t *testing.T) {
	engines := map[string]bool{}
	for _, r := range recordings(t) {
		engines[r.engine] = true
		t.Run(filepath.Base(r.path), func(t *testing.T) {
			var got []converted
			kinds := map[hmd.Kind]bool{}
			for i, m := range r.msgs {
				c := converted{Action: string(m.Action)}
				o, ok := Convert(m)
				if ok {
					c.Kind, c.ContainerID, c.Name, c.Image, c.Labels = o.Kind, o.ContainerID, o.Name, o.Image, o.Labels
					c.ExitCode, c.Signal, c.DockerTime = o.ExitCode, o.Signal, o.DockerTime.UnixNano()
					kinds[o.Kind] = true
					checkConverted(t, i+1, m, o)
				} else if m.Action != events.ActionRestart {
					t.Errorf("line %d: %s was not converted", i+1, m.Action)
				}
				got = append(got, c)
			}
			for _, k := range []hmd.Kind{hmd.DockerCreate, hmd.DockerStart, hmd.DockerHealthy, hmd.DockerUnhealthy, hmd.DockerRename,
				hmd.DockerKill, hmd.DockerDie, hmd.DockerStop, hmd.DockerOOM, hmd.DockerDestroy} {
				if !kinds[k] {
					t.Errorf("the recording has no %s: record it again (test/engine/record)", k)
				}
			}
			golden(t, strings.TrimSuffix(r.path, ".jsonl")+".golden.json", got)
		})
	}
	for _, want := range []string{"20.10", "29"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(engines)), func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("no recording of Docker %s in testdata/events", want)
		}
	}
}

func checkConverted(t *testing.T, line int, m events.Message, o hmd.Observed) {
	t.Helper()
	attrs := m.Actor.Attributes
	if len(o.ContainerID) != 64 || o.ContainerID != m.Actor.ID {
		t.Errorf("line %d: container %q, want Actor.ID %q", line, o.ContainerID, m.Actor.ID)
	}
	if o.Name == "" || o.Name != attrs["name"] {
		t.Errorf("line %d: name %q, want %q", line, o.Name, attrs["name"])
	}
	if o.DockerTime.UnixNano() != m.TimeNano || m.TimeNano == 0 {
		t.Errorf("line %d: docker time %d, want timeNano %d", line, o.DockerTime.UnixNano(), m.TimeNano)
	}
	if o.Labels["healme"] != "true" {
		t.Errorf("line %d: labels %v lack the container's healme=true", line, o.Labels)
	}
	for _, own := range []string{"name", "image", "exitCode", "signal", "oldName"} {
		if _, ok := o.Labels[own]; ok {
			t.Errorf("line %d: the daemon's attribute %s is among the labels", line, own)
		}
	}
	switch o.Kind {
	case hmd.DockerDie:
		if o.ExitCode == nil {
			t.Errorf("line %d: die without exit code", line)
		}
	case hmd.DockerKill:
		if o.Signal == "" {
			t.Errorf("line %d: kill without signal", line)
		}
	}
}

// From API 1.52 the daemon no longer sends the legacy top-level status, id
// and from; below it, it still does (Docker 29 too). The recordings hold
// both shapes, so Convert is proven not to need them.
func TestRecordedEventShapes(t *testing.T) {
	var modern, legacy int
	for _, r := range recordings(t) {
		old := apiBefore(r.api, 52)
		for i, raw := range r.raw {
			for _, k := range []string{"status", "id", "from"} {
				if _, has := raw[k]; has != old {
					t.Errorf("%s:%d: top-level %q present=%v at API %s", r.path, i+1, k, has, r.api)
				}
			}
			if _, ok := raw["timeNano"]; !ok {
				t.Errorf("%s:%d: no timeNano", r.path, i+1)
			}
			// Docker 29 back-fills the legacy fields through a float64,
			// so timeNano comes with 17 significant digits (rounded to
			// 100 ns here); Convert keeps what it gets.
			if tn := r.msgs[i].TimeNano; old && strings.HasPrefix(r.engine, "29") && tn%100 != 0 {
				t.Errorf("%s:%d: timeNano %d is not rounded", r.path, i+1, tn)
			}
		}
		if old {
			legacy++
		} else {
			modern++
		}
	}
	if modern == 0 || legacy == 0 {
		t.Errorf("recordings at API >= 1.52: %d, below: %d; want both", modern, legacy)
	}
}

// The scenario gives the same observations, in the same order, on every
// engine and API version, but for health checks (their count depends on
// timing) and one difference: Docker 29 sends a stop's stop before its
// die, 20.10 after. The healer must not rely on either order (a user's
// stop is known by its kill, which comes first on both).
func TestRecordedEventsAgreeAcrossEngines(t *testing.T) {
	const (
		create, start, rename, kill = hmd.DockerCreate, hmd.DockerStart, hmd.DockerRename, hmd.DockerKill
		die, stop, oom, destroy     = hmd.DockerDie, hmd.DockerStop, hmd.DockerOOM, hmd.DockerDestroy
	)
	want := map[string][]hmd.Kind{
		// run, rename, restart, kill, rm; run an OOM, rm.
		"20.10": {create, start, rename, kill, die, stop, start, kill, die, destroy, create, start, oom, die, destroy},
		"29":    {create, start, rename, kill, stop, die, start, kill, die, destroy, create, start, oom, die, destroy},
	}
	for _, r := range recordings(t) {
		var seq []hmd.Kind
		for _, m := range r.msgs {
			if o, ok := Convert(m); ok && o.Kind != hmd.DockerHealthy && o.Kind != hmd.DockerUnhealthy {
				seq = append(seq, o.Kind)
			}
		}
		var w []hmd.Kind
		for engine, kinds := range want {
			if strings.HasPrefix(r.engine, engine) {
				w = kinds
			}
		}
		if w == nil {
			t.Errorf("%s: no expected sequence for engine %s", r.path, r.engine)
		} else if !slices.Equal(seq, w) {
			t.Errorf("%s gives\n%v\nwant\n%v", r.path, seq, w)
		}
	}
}

// apiBefore tells whether API version 1.minor is older than 1.than.
func apiBefore(v string, than int) bool {
	minor, err := strconv.Atoi(strings.TrimPrefix(v, "1."))
	return err == nil && minor < than
}

// golden compares got with the JSON in path, or writes it with -update.
func golden(t *testing.T, path string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run TestConvertRecordedEvents -update writes it)", err)
	}
	var g, w any
	_ = json.Unmarshal(b, &g)
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("Convert differs from %s; got:\n%s", path, b)
	}
}
