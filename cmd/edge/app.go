package main

import (
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:    "edge",
		Usage:   "anytime dense prediction on edge devices",
		Version: version,
		Flags:   appFlags(),
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

// newLogger builds a command's slog logger, writing to stderr.
func newLogger(cfg LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.JSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
