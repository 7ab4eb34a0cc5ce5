package program

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/logging"
)

// Command is a subcommand: flags of its own (options O), then the settings.
type Command[O any] struct {
	// Name starts its messages, such as "healer check".
	Name string
	// Usage is the line --help prints after the settings.
	Usage string
	// Parse takes the command's own flags out of args and returns the
	// rest, the settings; config.ErrHelp asks for the help. Nil: none.
	Parse func(args []string) (O, []string, error)
	// LogLevel is the level of its log, such as "warn" where stdout is the
	// command's output; empty for the configured one.
	LogLevel string
	// Run runs the command. Its error is printed after Name, with exit
	// code 1; an *ExitError sets the code, and says nothing more.
	Run func(ctx context.Context, o O, cfg config.Config, r Run) error
}

// Run is what a command runs with.
type Run struct {
	Stdout, Stderr io.Writer
	Log            *slog.Logger
	// Warnings are the settings' warnings (unknown HMD_* variables).
	Warnings []string
}

// ExitError ends a command with Code, its output already written.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err so that the command ends with code and prints nothing
// more; nil stays nil.
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Main is the Runner of the command: its flags and the settings (exit
// code 2 if bad, the help with --help), logging, then Run.
func (c Command[O]) Main(ctx context.Context, args []string, env Env) int {
	var o O
	rest := args
	var err error
	if c.Parse != nil {
		o, rest, err = c.Parse(args)
	}
	if errors.Is(err, config.ErrHelp) {
		// The settings' help, as config.Load writes it, then the command's.
		config.Help(env.Stdout)
		c.help(env.Stdout)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", c.Name, err)
		return ExitUsage
	}
	var warnings []string
	cfg, err := config.Load(rest, env.Environ, env.Stdout, func(w string) { warnings = append(warnings, w) })
	if errors.Is(err, config.ErrHelp) {
		c.help(env.Stdout)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", c.Name, err)
		return ExitUsage
	}
	level := c.LogLevel
	if level == "" {
		level = cfg.LogLevel
	}
	r := Run{Stdout: env.Stdout, Stderr: env.Stderr, Log: logging.New(env.Stderr, cfg.LogFormat, level), Warnings: warnings}
	err = c.run(ctx, o, cfg, r)
	var exit *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &exit):
		return exit.Code
	}
	fmt.Fprintf(env.Stderr, "%s: %v\n", c.Name, err)
	return ExitFailure
}

func (c Command[O]) help(w io.Writer) {
	if c.Usage != "" {
		fmt.Fprintln(w, c.Usage)
	}
}

func (c Command[O]) run(ctx context.Context, o O, cfg config.Config, r Run) (err error) {
	defer recovered(&err)
	return c.Run(ctx, o, cfg, r)
}
