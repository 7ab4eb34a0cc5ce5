package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/internal/cleaner"
	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/dockertest"
)

// composeSpec makes a container exactly as compose labels it.
func composeSpec(name, project, label string) dockertest.Spec {
	return dockertest.Spec{Name: name, Labels: map[string]string{
		label:                        "true",
		cleaner.LabelProject:         project,
		cleaner.LabelService:         "web",
		cleaner.LabelNumber:          "1",
		cleaner.LabelOneoff:          "False",
		"com.docker.compose.version": "1.29.2",
	}}
}

func exists(t *testing.T, name string) bool {
	t.Helper()
	out, err := dockertest.Docker("ps", "-a", "--filter", "name=^/"+name+"$", "--format", "{{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out) == name
}

func cleanupOf(k events.Kind, name string) func(events.Event) bool {
	return func(e events.Event) bool { return e.Kind() == k && e.Data.Container == name }
}

// (a) a duplicate with a running canonical sibling is removed and the
// sibling untouched; (e) a chained prefix too; (f) a container whose name
// merely starts with 12 hex and _ is untouched.
func TestCleanerRemovesDuplicates(t *testing.T) {
	label := "hmd-clean-" + env.RunID
	project := "hmdc" + strings.ReplaceAll(env.RunID, "-", "")
	canonical := project + "_web_1"
	dup := "0123456789ab_" + canonical
	chained := "0123456789ab_abcdef012345_" + canonical
	unrelated := "0123456789ab_" + project + "-backup"
	dockerEvents := env.WatchEvents(t)
	canonID := env.Run(t, composeSpec(canonical, project, label))
	dockerEvents.Wait(t, wait, canonical+" healthy", dockertest.Is(canonical, "health_status: healthy"))
	env.Run(t, composeSpec(dup, project, label))
	env.Run(t, composeSpec(chained, project, label))
	env.Run(t, dockertest.Spec{Name: unrelated, Labels: map[string]string{label: "true"}})
	before := dockertest.Inspect(t, canonID)

	h := startHealer(t, t.TempDir(), "--container-label", label, "--clean-duplicates", "--clean-grace", "0")
	for _, name := range []string{dup, chained} {
		removed := h.got.wait(t, wait, name+" removed", cleanupOf(events.CleanupRemoved, name))
		if removed.Data.Canonical != canonical {
			t.Errorf("%s removed as duplicate of %q, want %q", name, removed.Data.Canonical, canonical)
		}
		dockerEvents.Wait(t, wait, name+" destroyed", dockertest.Is(name, "destroy"))
		if exists(t, name) {
			t.Errorf("%s still exists", name)
		}
	}
	after := dockertest.Inspect(t, canonID)
	if !after.Running || !after.StartedAt.Equal(before.StartedAt) || len(dockerEvents.All(dockertest.Is(canonical, "kill"))) > 0 {
		t.Errorf("canonical %s was touched: running %v, started %s (was %s)", canonical, after.Running, after.StartedAt, before.StartedAt)
	}
	if !exists(t, unrelated) {
		t.Errorf("%s, without compose labels, was removed", unrelated)
	}
	if n := h.got.count(func(e events.Event) bool { return e.Data.Container == unrelated && e.Kind().Category() == "cleanup" }); n > 0 {
		t.Errorf("%d cleanup events about %s, which is no compose container", n, unrelated)
	}
}

// (b) A prefixed container without a canonical sibling is kept, with a
// warning event.
func TestCleanerKeepsLoneprefixed(t *testing.T) {
	label := "hmd-lone-" + env.RunID
	project := "hmdl" + strings.ReplaceAll(env.RunID, "-", "")
	lone := "0123456789ab_" + project + "_web_1"
	env.Run(t, composeSpec(lone, project, label))
	h := startHealer(t, t.TempDir(), "--container-label", label, "--clean-duplicates", "--clean-grace", "0")
	kept := h.got.wait(t, wait, "kept", cleanupOf(events.CleanupKept, lone))
	if kept.Data.Reason != cleaner.ReasonNoSibling {
		t.Errorf("kept because %q, want %q", kept.Data.Reason, cleaner.ReasonNoSibling)
	}
	if !exists(t, lone) {
		t.Errorf("%s removed without a sibling", lone)
	}
}

// (c) A duplicate younger than the grace period is kept until it has passed.
func TestCleanerWaitsForTheGrace(t *testing.T) {
	label := "hmd-grace-" + env.RunID
	project := "hmdg" + strings.ReplaceAll(env.RunID, "-", "")
	canonical := project + "_web_1"
	dup := "0123456789ab_" + canonical
	dockerEvents := env.WatchEvents(t)
	env.Run(t, composeSpec(canonical, project, label))
	dockerEvents.Wait(t, wait, canonical+" healthy", dockertest.Is(canonical, "health_status: healthy"))
	h := startHealer(t, t.TempDir(), "--container-label", label, "--clean-duplicates", "--clean-grace", "4s")
	env.Run(t, composeSpec(dup, project, label))
	created := dockerEvents.Wait(t, wait, dup+" created", dockertest.Is(dup, "create"))
	kept := h.got.wait(t, wait, "kept for the grace", cleanupOf(events.CleanupKept, dup))
	if kept.Data.Reason != cleaner.ReasonGrace {
		t.Errorf("kept because %q, want %q", kept.Data.Reason, cleaner.ReasonGrace)
	}
	destroyed := dockerEvents.Wait(t, wait, dup+" destroyed", dockertest.Is(dup, "destroy"))
	// Created has second resolution in the list API: allow for it.
	if age := time.Duration(destroyed.TimeNano - created.TimeNano); age < 3*time.Second {
		t.Errorf("removed %s after creation, inside the 4 s grace", age)
	}
}

// (d) Dry run publishes what would be removed and removes nothing.
func TestCleanerDryRun(t *testing.T) {
	label := "hmd-dry-" + env.RunID
	project := "hmdd" + strings.ReplaceAll(env.RunID, "-", "")
	canonical := project + "_web_1"
	dup := "0123456789ab_" + canonical
	dockerEvents := env.WatchEvents(t)
	env.Run(t, composeSpec(canonical, project, label))
	env.Run(t, composeSpec(dup, project, label))
	dockerEvents.Wait(t, wait, canonical+" healthy", dockertest.Is(canonical, "health_status: healthy"))
	h := startHealer(t, t.TempDir(), "--container-label", label, "--clean-duplicates", "--clean-grace", "0", "--clean-dry-run")
	found := h.got.wait(t, wait, "dry-run finding", cleanupOf(events.CleanupFound, dup))
	if !found.Data.DryRun || found.Data.Canonical != canonical {
		t.Errorf("finding %+v: want a dry run naming %s", found.Data, canonical)
	}
	if !exists(t, dup) || len(dockerEvents.All(dockertest.Is(dup, "kill"))) > 0 {
		t.Errorf("dry run touched %s", dup)
	}
	if n := h.got.count(cleanupOf(events.CleanupRemoved, dup)); n > 0 {
		t.Errorf("dry run published %d removals", n)
	}
}
