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
			command("probe", "report ONNX Runtime, execution providers, host and power sensors",
				engineFlags(), engineOnlyConfig, runProbe),
			pipelineCommand("infer", "[IMAGE...]", "run a bundle on images (or a tensor) and write every exit's result",
				inferFlags(), inferConfig, runInfer),
			pipelineCommand("run", "[SOURCE-URI]", "the daemon: frames from a source through the anytime pipeline to MQTT, files and the live view",
				runFlags(), runConfig, runDaemon),
			command("power", "show rails, total power, temperatures and throttle state (tegrastats-like)",
				flags(powerFlags(), monitorFlags()), monitorConfig, runPower),
			command("bench", "time every exit of a bundle (and a baseline) on the same frames; --simulate checks the halting policy",
				flags(engineFlags(), benchFlags(), simulateFlags()), benchConfig, benchMode),
			enginesCommand(),
			// the same as `edge bench --simulate`
			command("simulate", "run the halting policy on a simulated device and check the issue 5 bounds",
				simulateFlags(), simulateConfig, runSimulation),
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
