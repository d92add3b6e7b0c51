package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:    "edge",
		Usage:   "anytime dense prediction on edge devices",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"EDGE_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Usage: "text or json (default: json for run, text otherwise)", EnvVars: []string{"EDGE_LOG_FORMAT"}},
			&cli.StringFlag{Name: "config", Usage: "JSON file of flag values (a flag or EDGE_* variable overrides it)", EnvVars: []string{"EDGE_CONFIG"}},
		},
		Commands: []*cli.Command{
			probeCommand(),
			inferCommand(),
			runCommand(),
			powerCommand(),
			benchCommand(),
			enginesCommand(),
			simulateCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits
	}
}

// newLogger builds the slog logger of a command; daemons default to JSON.
func newLogger(c *cli.Context, daemon bool) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	format := c.String("log-format")
	if format == "" {
		format = "text"
		if daemon {
			format = "json"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// applyConfigFile sets every flag of the command that neither the command
// line nor an environment variable set from the --config JSON file, whose
// keys are flag names. Unknown keys are an error, so typos do not pass.
func applyConfigFile(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var values map[string]any
	if err := json.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("--config %s: want a JSON object of flag values: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for name, v := range values {
		if !known[name] {
			return fmt.Errorf("--config %s: %q is not a flag of %q", path, name, c.Command.Name)
		}
		if c.IsSet(name) {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []any:
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(v)
		}
		if err := c.Set(name, s); err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, name, err)
		}
	}
	return nil
}
