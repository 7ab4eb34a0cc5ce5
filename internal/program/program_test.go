package program

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/healmydocker/healmydocker/internal/config"
)

func TestGroupTurnsAPanicIntoItsError(t *testing.T) {
	t.Parallel()
	var g Group
	ctx, cancel := context.WithCancel(context.Background())
	interrupted := false
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { interrupted = true; cancel() })
	g.Add(func() error { panic("boom") }, func(error) {})
	err := g.Run()
	var p *PanicError
	if !errors.As(err, &p) || p.Value != "boom" || !strings.Contains(err.Error(), "program_test.go") {
		t.Fatalf("err %v, want the panic with its stack", err)
	}
	if !interrupted {
		t.Error("the other actor was not interrupted")
	}
}

func invoke(r Runner, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = r(context.Background(), args, Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestDaemonExitCodes(t *testing.T) {
	t.Parallel()
	started := func(err error) func(context.Context, config.Config, *slog.Logger) (func(context.Context) error, error) {
		return func(context.Context, config.Config, *slog.Logger) (func(context.Context) error, error) {
			return func(context.Context) error { return err }, nil
		}
	}
	d := Daemon{Name: "healer", Version: "v1", Commit: "c", Start: started(nil)}
	for _, tc := range []struct {
		name   string
		d      func(Daemon) Daemon
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", nil, []string{"--version"}, ExitOK, "healer v1 (commit c, ", ""},
		{"help", nil, []string{"--help"}, ExitOK, "Usage: healer", ""},
		{"runs", nil, nil, ExitOK, "", ""},
		{"bad setting", nil, []string{"--frame-size", "soon"}, ExitUsage, "", "healer: invalid frame_size"},
		{"unknown flag", nil, []string{"--no-such"}, ExitUsage, "", "healer: command line: unknown flag: --no-such"},
		{"refused", func(d Daemon) Daemon { d.Check = func(config.Config) error { return errors.New("no") }; return d }, nil, ExitUsage, "", "healer: no"},
		{"cannot start", func(d Daemon) Daemon {
			d.Start = func(context.Context, config.Config, *slog.Logger) (func(context.Context) error, error) {
				return nil, errors.New("locked")
			}
			return d
		}, nil, ExitFailure, "", "healer cannot start"},
		{"fails", func(d Daemon) Daemon { d.Start = started(errors.New("lost")); return d }, nil, ExitFailure, "", "healer failed"},
		{"panics", func(d Daemon) Daemon {
			d.Start = func(context.Context, config.Config, *slog.Logger) (func(context.Context) error, error) {
				return func(context.Context) error { panic("bug") }, nil
			}
			return d
		}, nil, ExitFailure, "", "panic: bug"},
	} {
		dd := d
		if tc.d != nil {
			dd = tc.d(d)
		}
		code, out, errs := invoke(dd.Main, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.name, code, out, errs, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestCommandExitCodes(t *testing.T) {
	t.Parallel()
	type opts struct{}
	cmd := func(runErr error) Command[opts] {
		return Command[opts]{
			Name: "healer x", Usage: "healer x [--bad]: a test",
			Parse: func(args []string) (opts, []string, error) {
				if len(args) > 0 && args[0] == "--bad" {
					return opts{}, nil, errors.New("bad flag")
				}
				if len(args) > 0 && args[0] == "--help" {
					return opts{}, nil, config.ErrHelp
				}
				return opts{}, args, nil
			},
			Run: func(context.Context, opts, config.Config, Run) error { return runErr },
		}
	}
	for _, tc := range []struct {
		name   string
		c      Command[opts]
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"ok", cmd(nil), nil, ExitOK, "", ""},
		{"own help", cmd(nil), []string{"--help"}, ExitOK, "healer x [--bad]: a test", ""},
		{"settings' help", cmd(nil), []string{"--data-dir", "d", "--help"}, ExitOK, "healer x [--bad]: a test", ""},
		{"bad flag", cmd(nil), []string{"--bad"}, ExitUsage, "", "healer x: bad flag"},
		{"bad setting", cmd(nil), []string{"--frame-size", "soon"}, ExitUsage, "", "healer x: invalid frame_size"},
		{"fails", cmd(errors.New("no docker")), nil, ExitFailure, "", "healer x: no docker"},
		{"exit code of its own", cmd(Exit(ExitFailure, errors.New("said"))), nil, ExitFailure, "", ""},
		{"panics", Command[opts]{Name: "healer x", Run: func(context.Context, opts, config.Config, Run) error { panic("bug") }}, nil, ExitFailure, "", "healer x: panic: bug"},
	} {
		code, out, errs := invoke(tc.c.Main, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) || (tc.stderr == "" && errs != "") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.name, code, out, errs, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestMainDispatches(t *testing.T) {
	t.Parallel()
	named := func(name string) Runner {
		return func(_ context.Context, args []string, env Env) int {
			env.Stdout.Write([]byte(name + ":" + strings.Join(args, ",")))
			return 0
		}
	}
	b := Binary{Run: named("run"), Commands: map[string]Runner{"check": named("check")}, Links: map[string]Runner{"notifier": named("notifier")}}
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/healer"}, "run:"},
		{[]string{"/healer", "--debug"}, "run:--debug"},
		{[]string{"/healer", "check", "web"}, "check:web"},
		{[]string{"/usr/bin/notifier", "check"}, "notifier:check"},
	} {
		var out bytes.Buffer
		Main(b, tc.argv, Env{Stdout: &out, Stderr: &out})
		if out.String() != tc.want {
			t.Errorf("%q: ran %q, want %q", tc.argv, out.String(), tc.want)
		}
	}
}

// A stop (SIGINT, SIGTERM) while the daemon starts is a clean stop, exit 0
// as README says, not a failure to start: what Start was doing when it
// was told to stop (asking Docker for its name, opening a bucket) fails
// with the end of ctx, and is no reason for an error.
func TestDaemonStoppedWhileStarting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	d := Daemon{Name: "cleaner", Start: func(ctx context.Context, _ config.Config, _ *slog.Logger) (func(context.Context) error, error) {
		cancel() // the signal, while Docker is asked
		<-ctx.Done()
		return nil, fmt.Errorf("host name: %w (or set HMD_HOST_NAME)", ctx.Err())
	}}
	var out, errb bytes.Buffer
	code := d.Main(ctx, nil, Env{Stdout: &out, Stderr: &errb})
	if code != ExitOK || strings.Contains(errb.String(), "level=ERROR") || !strings.Contains(errb.String(), "cleaner stopped while starting") {
		t.Errorf("exit %d, stderr %q; want 0 and 'cleaner stopped while starting'", code, errb.String())
	}
	// A failure before any stop is still one.
	d.Start = func(context.Context, config.Config, *slog.Logger) (func(context.Context) error, error) {
		return nil, errors.New("host name: no docker")
	}
	if code, _, errs := invoke(d.Main); code != ExitFailure || !strings.Contains(errs, "cleaner cannot start") {
		t.Errorf("exit %d, stderr %q; want 1 and 'cannot start'", code, errs)
	}
}
