package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/sink"
)

// runInfer is `edge infer`: every input once through the pipeline (a
// finite source that never drops), each failure reported and the rest
// still written.
func runInfer(ctx context.Context, cfg Config, log *slog.Logger, _ io.Writer) error {
	inputs := cfg.Infer.Inputs
	paths := make([]string, len(inputs))
	for i, in := range inputs {
		paths[i] = in.Path
	}
	names, err := sink.Names(paths)
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	fr, err := openFrames(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer fr.Close()
	b, x := fr.bundle, fr.exec
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
		sink.Announce(ctx, fl.Pub, b, providers(fr.engine, len(b.Stages)), log)
		outs = append(outs, sink.NewResults(fl.Pub, sink.ResultsOptions{Log: log}))
	}
	set := sink.New(b, sink.Options{Log: log, LogFrames: true, KeepFailures: true}, outs...)
	src := pipeline.NewInputs(inputs, b.Input)
	p := fr.newPipeline(src, []pipeline.Sink{set}, pipeline.Options{}, log)
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
