// Package testkit holds the helpers the test suites share: waiting on a
// condition with a deadline, free loopback ports, a Slack-format webhook
// receiver. It imports the standard library and test/waitlog only, so the
// unit tests of any internal package may use it without an import cycle;
// what needs NATS is in test/testkit/natstest.
package testkit

import (
	"fmt"
	"testing"
	"time"
)

// The first pause between two probes, and the longest: cheap conditions
// are seen at once, costly ones (reading a whole stream) are not run in a
// tight loop on a small machine.
const (
	firstPause = 5 * time.Millisecond
	maxPause   = 200 * time.Millisecond
)

// Poll calls probe until it reports done or d has passed, pausing a little
// longer after each round. It returns what probe saw last and whether it
// was done. Poll is for programs without a testing.TB (the benchmarks);
// tests use Eventually or Until.
func Poll[T any](d time.Duration, probe func() (T, bool)) (T, bool) {
	deadline := time.Now().Add(d)
	pause := firstPause
	for {
		v, done := probe()
		if done {
			return v, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return v, false
		}
		time.Sleep(min(pause, left))
		pause = min(pause*2, maxPause)
	}
}

// Eventually waits up to d for probe to report done and returns its value.
// Past d it fails t, naming what it waited for and what probe saw last.
func Eventually[T any](t testing.TB, d time.Duration, what string, probe func() (T, bool)) T {
	t.Helper()
	v, ok := Poll(d, probe)
	if !ok {
		t.Fatalf("waited %s for %s; last seen: %s", d, what, show(v))
	}
	return v
}

// Until waits up to d for ok; past d it fails t, naming what it waited for.
func Until(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	if _, done := Poll(d, func() (struct{}, bool) { return struct{}{}, ok() }); !done {
		t.Fatalf("waited %s for %s", d, what)
	}
}

// show prints a last-seen value: strings as they are (they are often
// whole logs), anything else as %v.
func show(v any) string {
	if s, ok := v.(string); ok {
		return "\n" + s
	}
	return fmt.Sprintf("%v", v)
}
