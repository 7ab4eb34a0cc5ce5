package cli

import (
	"errors"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/config"
)

// parseOwn parses a subcommand's own flags out of args with fs; the
// arguments it does not know, the settings for config.Load and bare
// words, are returned in their order and spelling. --help gives
// config.ErrHelp.
func parseOwn(fs *pflag.FlagSet, args []string) ([]string, error) {
	fs.ParseErrorsAllowlist.UnknownFlagsHandling = pflag.PassUnknownFlagToArgs
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// outputFlag is -o/--output: table or json.
type outputFlag struct{ json *bool }

func (f outputFlag) String() string {
	if f.json != nil && *f.json {
		return "json"
	}
	return "table"
}

func (f outputFlag) Set(v string) error {
	switch v {
	case "json":
		*f.json = true
	case "table":
		*f.json = false
	default:
		return errors.New("expected table or json")
	}
	return nil
}

func (outputFlag) Type() string { return "table|json" }

// outputVar defines -o/--output on fs, into json.
func outputVar(fs *pflag.FlagSet, json *bool) {
	fs.VarP(outputFlag{json}, "output", "o", "table or json")
}

// sinceFlag is --since: how far back, such as 1h or 30m.
type sinceFlag struct{ d *time.Duration }

func (f sinceFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f sinceFlag) Set(v string) error {
	d, err := config.ParseDuration(v)
	if err != nil || d < 0 {
		return errors.New("expected a duration such as 1h or 30m")
	}
	*f.d = d
	return nil
}

func (sinceFlag) Type() string { return "duration" }
