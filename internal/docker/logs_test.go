package docker

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healmydocker/healmydocker/test/dockertest"
	"github.com/healmydocker/healmydocker/test/testkit"
)

// The real engine, set up by the first test that needs it.
var (
	engineOnce sync.Once
	engine     *dockertest.Env
	engineErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if engine != nil {
		engine.Close()
	}
	os.Exit(code)
}

func realEngine(t *testing.T) (*dockertest.Env, *Client) {
	t.Helper()
	engineOnce.Do(func() { engine, engineErr = dockertest.Setup() })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	c, err := NewFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return engine, c
}

// waitLog waits until the container has logged want.
func waitLog(t *testing.T, id, want string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("%q in the logs of %s", want, id), func() (string, bool) {
		out, _ := dockertest.Docker("logs", id)
		return out, strings.Contains(out, want)
	})
}

func TestLogTailOfARealContainer(t *testing.T) {
	env, c := realEngine(t)
	name := "hmd-logtail-" + env.RunID
	id := env.Run(t, dockertest.Spec{Name: name, Env: map[string]string{"FIXTURE_LOG_LINES": "30"}})
	waitLog(t, id, "run 1 line 30")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	all, err := c.LogTail(ctx, id, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(all, "\n")
	if len(lines) != 31 {
		t.Fatalf("the whole log has %d lines, want 31:\n%s", len(lines), all)
	}
	// Both streams are there; the daemon orders them as its two copiers
	// wrote them, which need not be the order they were printed in.
	for _, want := range []string{"run 1 line 1", "run 1 line 2", "run 1 line 29", "run 1 line 30"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the log lacks %q:\n%s", want, all)
		}
	}

	got, err := c.LogTail(ctx, id, 5, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines[26:], "\n"); got != want {
		t.Errorf("last 5 lines:\n%q\nwant\n%q", got, want)
	}

	// The byte bound keeps as many whole lines from the end as fit.
	got, err = c.LogTail(ctx, id, 30, 40)
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for i := len(lines) - 1; i >= 0 && len(lines[i])+1+len(want) <= 40; i-- {
		want = strings.TrimSuffix(lines[i]+"\n"+want, "\n")
	}
	if got != want || want == "" {
		t.Errorf("tail bounded to 40 bytes: %q, want %q", got, want)
	}

	if got, err := c.LogTail(ctx, id, 0, 2048); err != nil || got != "" {
		t.Errorf("0 lines: %q, %v", got, err)
	}
}

func TestLogTailOfATTYContainer(t *testing.T) {
	env, c := realEngine(t)
	name := "hmd-logtail-tty-" + env.RunID
	id := env.Run(t, dockertest.Spec{Name: name, Args: []string{"-t"}, Env: map[string]string{"FIXTURE_LOG_LINES": "4"}})
	waitLog(t, id, "run 1 line 4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.LogTail(ctx, id, 2, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// A TTY ends lines with \r\n: read raw, they come out as plain lines.
	if got != "run 1 line 3\nrun 1 line 4" {
		t.Errorf("TTY tail: %q", got)
	}
}

func TestLogTailOfAnUnreadableDriver(t *testing.T) {
	env, c := realEngine(t)
	name := "hmd-logtail-none-" + env.RunID
	id := env.Run(t, dockertest.Spec{Name: name, Args: []string{"--log-driver", "none"}, Env: map[string]string{"FIXTURE_LOG_LINES": "4"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.LogTail(ctx, id, 5, 2048)
	if err != nil || got != "logs unavailable: none" {
		t.Errorf("log driver none: %q, %v", got, err)
	}
}

func TestLogTailOfAGoneContainer(t *testing.T) {
	_, c := realEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.LogTail(ctx, "hmd-no-such-container", 5, 2048); err == nil || !strings.Contains(err.Error(), "log tail of") {
		t.Errorf("a missing container: %v", err)
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "a\nb\n", "a\nb"},
		{"colours", "\x1b[31mred\x1b[0m ok", "red ok"},
		{"title", "\x1b]0;title\x07text", "text"},
		{"crlf", "a\r\nb\r\n", "a\nb"},
		{"controls", "a\x00b\x07c\td\x7f", "abc\td"},
		{"invalid utf8", "a\xffb é", "ab é"},
		{"lone escape", "end\x1b", "end"},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("%s: Clean(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	t.Parallel()
	b := &tailBuffer{max: 16}
	for i := range 100 {
		fmt.Fprintf(b, "line %d\n", i)
	}
	if got := b.text(); got != "line 98\nline 99" {
		t.Errorf("tail: %q", got)
	}
	one := &tailBuffer{max: 8}
	_, _ = one.Write([]byte(strings.Repeat("x", 100)))
	if got := one.text(); got != "xxxxxxxx" {
		t.Errorf("one long line: %q", got)
	}
}
