package config

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Repairman's switches that select every container, and the one that has no
// meaning for an event-driven healer.
const (
	aliasEnableAutoheal = "DEFAULT_ENABLE_AUTO_HEAL"
	aliasInterval       = "CHECK_INTERVAL"
)

// Load reads the layers in order, lowest first: defaults, the file named by
// --config (or HMD_CONFIG), HMD_* environment, flags. Invalid values and
// unknown keys in the file are *Error; --help gives ErrHelp after writing
// the help to out. warn gets unknown HMD_* variables.
func Load(args []string, environ []string, out io.Writer, warn func(string)) (Config, error) {
	return LoadProgram("healer", args, environ, out, warn)
}

// LoadProgram is Load for the named program, whose name the help shows.
func LoadProgram(program string, args []string, environ []string, out io.Writer, warn func(string)) (Config, error) {
	ss := settings()
	fs := pflag.NewFlagSet(program, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgFile := fs.String("config", "", "YAML file of settings")
	aliasOf := map[string]string{} // alias flag name -> key
	for _, s := range ss {
		f := fs.VarPF(newStringValue(), FlagName(s.key), "", s.help)
		if s.flagBool {
			f.NoOptDefVal = "true"
		}
		for _, a := range s.flagAliases {
			af := fs.VarPF(newStringValue(), a, "", "alias of --"+FlagName(s.key))
			af.Hidden = true
			if s.flagBool {
				af.NoOptDefVal = "true"
			}
			aliasOf[a] = s.key
		}
	}
	// Repairman's switches: --enable-autoheal selects every container;
	// --interval is for its polling loop, which an event-driven healer lacks.
	enableAll := fs.Bool("enable-autoheal", false, "alias of --container-label all")
	fs.Lookup("enable-autoheal").Hidden = true
	interval := fs.String("interval", "", "ignored")
	fs.Lookup("interval").Hidden = true
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			writeHelp(out, program, ss)
			return Config{}, ErrHelp
		}
		return Config{}, fmt.Errorf("command line: %w (see --help)", flagError(err))
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("command line: unexpected argument %q (see --help)", fs.Arg(0))
	}

	k := koanf.New(".")
	defs := map[string]any{}
	for _, s := range ss {
		defs[s.key] = s.def
	}
	if err := k.Load(confmap.Provider(defs, "."), nil); err != nil {
		return Config{}, fmt.Errorf("load defaults: %w", err)
	}
	source := map[string]string{}
	path := *cfgFile
	if path == "" {
		path = lookupEnv(environ, EnvPrefix+"CONFIG")
	}
	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, &Error{Key: "config", Value: path, Expected: "a readable YAML file (" + err.Error() + ")"}
		}
		for _, key := range fk.Keys() {
			if !known(ss, key) {
				// The value is not shown: a misspelt password key holds a password.
				return Config{}, &Error{Key: key, Source: path, Value: "[value not shown]", Expected: "a known setting (see --help)"}
			}
			source[key] = path
		}
		if err := k.Merge(fk); err != nil {
			return Config{}, fmt.Errorf("merge %s: %w", path, err)
		}
	}
	// Other healers' variables, below ours.
	envAlias := map[string]string{}
	for _, s := range ss {
		for _, a := range s.envAliases {
			envAlias[a] = s.key
		}
	}
	ak := koanf.New(".")
	err := ak.Load(env.Provider(".", env.Opt{
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			switch name {
			case aliasEnableAutoheal:
				if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil && b {
					source["container_label"] = name
					return "container_label", "all"
				}
				return "", nil
			case aliasInterval:
				warn(fmt.Sprintf("ignoring %s: HealMyDocker reacts to Docker events and does not poll", name))
				return "", nil
			}
			key, ok := envAlias[name]
			if !ok {
				return "", nil
			}
			source[key] = name
			return key, v
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("load alias environment: %w", err)
	}
	if err := k.Merge(ak); err != nil {
		return Config{}, fmt.Errorf("merge alias environment: %w", err)
	}
	ek := koanf.New(".")
	err = ek.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			key := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
			if key == "config" {
				return "", nil
			}
			if !known(ss, key) {
				warn(fmt.Sprintf("ignoring unknown environment variable %s", name))
				return "", nil
			}
			source[key] = name
			return key, v
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("load environment: %w", err)
	}
	if err := k.Merge(ek); err != nil {
		return Config{}, fmt.Errorf("merge environment: %w", err)
	}
	if *interval != "" {
		warn("ignoring --interval: HealMyDocker reacts to Docker events and does not poll")
	}
	err = k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		if !f.Changed {
			return "", nil
		}
		switch f.Name {
		case "config", "interval":
			return "", nil
		case "enable-autoheal":
			if !*enableAll || fs.Changed("container-label") {
				return "", nil
			}
			source["container_label"] = "--enable-autoheal"
			return "container_label", "all"
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if native, ok := aliasOf[f.Name]; ok {
			if fs.Changed(FlagName(native)) {
				return "", nil
			}
			key = native
		}
		source[key] = "--" + f.Name
		return key, f.Value.String()
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("load flags: %w", err)
	}

	var c Config
	for _, s := range ss {
		v := valueString(k.Get(s.key))
		if err := s.set(&c, v); err != nil {
			src := source[s.key]
			if src == "" {
				src = "default"
			}
			return Config{}, &Error{Key: s.key, Source: src, Value: v, Expected: err.Error()}
		}
	}
	if c.Debug {
		c.LogLevel = "debug"
	}
	c.Policy.HealExitedSet = source["heal_exited"] != ""

	if err := validate(&c); err != nil {
		return Config{}, err
	}
	return c, nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func valueString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case []any:
		parts := make([]string, len(t))
		for i, p := range t {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(t)
	}
}

// stringValue is a pflag.Value that keeps the raw text: parsing is ours, so
// every bad value gets the same kind of message whatever layer it came from.
type stringValue struct{ v *string }

func newStringValue() *stringValue        { return &stringValue{v: new(string)} }
func (s *stringValue) String() string     { return *s.v }
func (s *stringValue) Set(v string) error { *s.v = v; return nil }
func (s *stringValue) Type() string       { return "string" }

// flagError is pflag's error without the value it would quote: a setting
// written with one dash, as Go's flag package takes it
// (-nats-password=x), is an unknown shorthand to pflag, whose error holds
// the whole argument, value and all.
func flagError(err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() != "" {
		name, _, hasValue := strings.Cut(ne.GetSpecifiedShortnames(), "=")
		shown := "-" + name
		if hasValue {
			shown += "=[value not shown]"
		}
		if len(name) > 1 {
			return fmt.Errorf("unknown flag %s: a flag takes two dashes, such as --%s", shown, name)
		}
		return fmt.Errorf("unknown shorthand flag %s", shown)
	}
	var se *pflag.InvalidSyntaxError
	if errors.As(err, &se) {
		name, _, hasValue := strings.Cut(se.GetSpecifiedFlag(), "=")
		if hasValue {
			name += "=[value not shown]"
		}
		return fmt.Errorf("bad flag syntax: %s", name)
	}
	return err
}
