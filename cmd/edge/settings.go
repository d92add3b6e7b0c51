package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/internal/regfile"
)

// settings reads one command's flag values with the precedence flag >
// EDGE_* environment variable > --config file > the flag's default, and
// collects what is wrong with them. It is the only reader of the command
// line: the builders in config.go turn it into a Config, and no other code
// sees flags.
type settings struct {
	c      *cli.Context
	path   string            // the --config file, if any
	file   map[string]string // its values as flag text, by flag name
	args   []string          // the positional arguments
	errors []error
}

// runFunc does a command's work with its Config, the logger built from it
// and the writer for the command's output.
type runFunc func(ctx context.Context, cfg Config, log *slog.Logger, w io.Writer) error

// command is one `edge` command (or subcommand) named name: its one-line
// usage, its flags, build turning those into the command's Config, and run
// doing the work with it.
func command(name, usage string, fl []cli.Flag, build func(*settings) (Config, error), run runFunc) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, Flags: fl, Action: action(build, run)}
}

// pipelineCommand is a command that runs frames through the pipeline
// (`edge run`, `edge infer`): its positional arguments are args, and it
// takes pipelineFlags with its own flags.
func pipelineCommand(name, args, usage string, own []cli.Flag, build func(*settings) (Config, error), run runFunc) *cli.Command {
	c := command(name, usage, pipelineFlags(own), build, run)
	c.ArgsUsage = args
	return c
}

// action is a command's cli entry point: it builds the command's Config
// from its flags with build, then hands it to run with the context, the
// command's logger and the writer for the command's output.
func action(build func(*settings) (Config, error), run runFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		s, err := newSettings(c)
		if err != nil {
			return err
		}
		cfg, err := build(s)
		if err != nil {
			return err
		}
		return run(c.Context, cfg, newLogger(cfg.Log), c.App.Writer)
	}
}

// maxConfigBytes bounds the --config file.
const maxConfigBytes = 1 << 20

// newSettings reads the --config file, a JSON object whose keys are flag
// names of the command. An unknown key is an error, so typos do not pass.
func newSettings(c *cli.Context) (*settings, error) {
	s := &settings{c: c, path: c.String(flagConfig), file: map[string]string{}, args: c.Args().Slice()}
	if s.path == "" {
		return s, nil
	}
	raw, err := regfile.Read(s.path, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers as written: 1000000, not 1e+06
	var values map[string]any
	if err := dec.Decode(&values); err != nil {
		return nil, fmt.Errorf("--config %s: want a JSON object of flag values: %w", s.path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for name, v := range values {
		if !known[name] {
			return nil, fmt.Errorf("--config %s: %q is not a flag of %q", s.path, name, c.Command.Name)
		}
		switch v := v.(type) {
		case string:
			s.file[name] = v
		case []any:
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = fmt.Sprint(x)
			}
			s.file[name] = strings.Join(parts, ",")
		default:
			s.file[name] = fmt.Sprint(v)
		}
	}
	return s, nil
}

// isSet reports whether the flag, its variable or the file gave a value.
func (s *settings) isSet(name string) bool {
	_, inFile := s.file[name]
	return s.c.IsSet(name) || inFile
}

// value reads a flag of type T: from the command line or the environment
// (flagValue, which also gives the default), else from the --config file's
// text (parse; a value that does not parse is recorded, wanting want).
func value[T any](s *settings, name string, flagValue func(string) T, parse func(string) (T, error), want string) T {
	v, ok := s.file[name]
	if !ok || s.c.IsSet(name) {
		return flagValue(name)
	}
	x, err := parse(v)
	if err != nil {
		s.errors = append(s.errors, fmt.Errorf("--config %s: %s %q: want %s", s.path, name, v, want))
	}
	return x
}

func (s *settings) string(name string) string {
	return value(s, name, s.c.String, func(v string) (string, error) { return v, nil }, "")
}

func (s *settings) bool(name string) bool {
	return value(s, name, s.c.Bool, strconv.ParseBool, "true or false")
}

func (s *settings) int(name string) int {
	return value(s, name, s.c.Int, strconv.Atoi, "an integer")
}

func (s *settings) uint64(name string) uint64 {
	parse := func(v string) (uint64, error) { return strconv.ParseUint(v, 10, 64) }
	return value(s, name, s.c.Uint64, parse, "an integer ≥ 0")
}

func (s *settings) float(name string) float64 {
	parse := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	return value(s, name, s.c.Float64, parse, "a number")
}

func (s *settings) duration(name string) time.Duration {
	return value(s, name, s.c.Duration, time.ParseDuration, "a duration such as 40ms")
}

// refuse records that a flag's value is not what was expected. The message
// names the flag, the value and what is wanted.
func (s *settings) refuse(name string, value any, want string) {
	s.errors = append(s.errors, fmt.Errorf("--%s %v: want %s", name, value, want))
}

// fail records an error about the settings as a whole.
func (s *settings) fail(err error) { s.errors = append(s.errors, err) }

// err is every problem recorded, or nil.
func (s *settings) err() error { return errors.Join(s.errors...) }

// finite reports whether f is a number (not NaN, not ±Inf).
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// nonNegative reads a float flag that must be finite and ≥ 0.
func (s *settings) nonNegative(name, want string) float64 {
	f := s.float(name)
	if !finite(f) || f < 0 {
		s.refuse(name, f, want)
	}
	return f
}

// nonNegativeInt reads an integer flag that must be ≥ 0.
func (s *settings) nonNegativeInt(name, want string) int {
	n := s.int(name)
	if n < 0 {
		s.refuse(name, n, want)
	}
	return n
}

// nonNegativeDuration reads a duration flag that must be ≥ 0.
func (s *settings) nonNegativeDuration(name, want string) time.Duration {
	d := s.duration(name)
	if d < 0 {
		s.refuse(name, d, want)
	}
	return d
}

// positiveDuration reads a duration flag that must be > 0.
func (s *settings) positiveDuration(name string) time.Duration {
	d := s.duration(name)
	if d <= 0 {
		s.refuse(name, d, "a positive duration")
	}
	return d
}
