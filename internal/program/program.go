// Package program is the start-up that every binary shares: signals,
// settings (config, read through koanf), logging, one run group whose
// actors' panics become errors, and the exit codes. A binary is a daemon
// (the healer, the notifier, the cleaner) and subcommands; cmd/* only name
// them.
package program

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
)

// Exit codes of every binary and subcommand.
const (
	ExitOK = 0
	// ExitFailure is a failure at run time.
	ExitFailure = 1
	// ExitUsage is bad flags or bad configuration.
	ExitUsage = 2
)

// Env is what a program gets from the process.
type Env struct {
	Environ        []string
	Stdout, Stderr io.Writer
}

// OS is the process's own environment and output.
func OS() Env { return Env{Environ: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr} }

// Runner runs a program or a subcommand with its arguments (the name taken
// off) and returns the exit code.
type Runner func(ctx context.Context, args []string, env Env) int

// Binary is one executable.
type Binary struct {
	// Run is the program run when no subcommand is named.
	Run Runner
	// Commands are the subcommands, by the first argument.
	Commands map[string]Runner
	// Links are the programs run when the executable is called by another
	// name: the image links notifier and cleaner to the healer, which keeps
	// it small.
	Links map[string]Runner
}

// Main runs the program that argv names until it ends or SIGINT or
// SIGTERM, and returns its exit code.
func Main(b Binary, argv []string, env Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var args []string
	if len(argv) > 0 {
		if r, ok := b.Links[filepath.Base(argv[0])]; ok {
			return r(ctx, argv[1:], env)
		}
		args = argv[1:]
	}
	if len(args) > 0 {
		if r, ok := b.Commands[args[0]]; ok {
			return r(ctx, args[1:], env)
		}
	}
	return b.Run(ctx, args, env)
}

// PanicError is a panic recovered from a component, with where it happened.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.Value, e.Stack) }

// recovered turns a panic into *err. Deferred directly.
func recovered(err *error) {
	if v := recover(); v != nil {
		*err = &PanicError{Value: v, Stack: debug.Stack()}
	}
}
