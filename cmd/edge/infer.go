package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/sink"
)

func inferCommand() *cli.Command {
	return &cli.Command{
		Name:      "infer",
		Usage:     "run a bundle on images (or a tensor) and write every exit's result",
		ArgsUsage: "[IMAGE...]",
		Flags:     flags(engineFlags(), limitFlags(), powerFlags(), []cli.Flag{powerIntervalFlag()}, inferFlags(), telemetryFlags()),
		Action:    action(inferConfig, runInfer),
	}
}

// runInfer is `edge infer`: every input once through the pipeline (a
// finite source that never drops), each failure reported and the rest
// still written.
func runInfer(ctx context.Context, cfg Config, _ io.Writer) error {
	log := newLogger(cfg.Log)
	inputs := cfg.Infer.Inputs
	paths := make([]string, len(inputs))
	for i, in := range inputs {
		paths[i] = in.Path
	}
	names, err := sink.Names(paths)
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	b, engine, err := openBundle(cfg.Engine, cfg.Engine.Bundle, log)
	if err != nil {
		return err
	}
	defer engine.Close()
	if err := cfg.checkBundle(b); err != nil {
		return err
	}
	pw, err := startPower(ctx, cfg.Power, stageSeeds(b), power.DefaultDeviceSeed(engine.Provider(0)), log)
	if err != nil {
		return err
	}
	defer pw.Stop()
	var p *pipeline.Pipeline // made once its sinks exist, below
	x, err := anytime.New(b, engine, anytime.Config{
		Policy: pw.Policy, Meter: pw.Recorder, HardDeadline: cfg.Power.Limits.Deadline,
		OnExit: func(e anytime.Exit, merged []float32, mask []uint8) { p.OnExit(e, merged, mask) },
	})
	if err != nil {
		return err
	}
	if err := tune(ctx, x, b, cfg.Engine, log); err != nil {
		return err
	}
	files, err := sink.NewFiles(sink.FilesOptions{
		Dir: cfg.Infer.Out, ExitMaps: true, Summaries: true, Name: names, Threshold: x.Threshold,
		Dump: cfg.Infer.Dump, DumpPerFrame: len(inputs) > 1,
	})
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	outs := []sink.Output{files}
	if cfg.Telemetry != nil {
		fl, err := sink.OpenFleet(ctx, *cfg.Telemetry, nil, log)
		if err != nil {
			return err
		}
		defer fl.Close()
		sink.Announce(ctx, fl.Pub, b, providers(engine, len(b.Stages)), log)
		outs = append(outs, sink.NewResults(fl.Pub, sink.ResultsOptions{Log: log}))
	}
	set := sink.New(b, sink.Options{Log: log, LogFrames: true, KeepFailures: true}, outs...)
	src := pipeline.NewInputs(inputs, b.Input)
	p = pipeline.New(src, []pipeline.Sink{set}, pipeline.Options{}, log.With("component", "pipeline"))
	if err := p.Run(ctx, x, src.Prepare); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed := set.Failures(); len(failed) > 0 {
		return fmt.Errorf("infer: %d of %d inputs failed:\n  %s", len(failed), len(inputs), strings.Join(failed, "\n  "))
	}
	return nil
}
