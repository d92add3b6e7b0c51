package main

import (
	"context"
	"log/slog"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/source"
)

// frames is what `edge run` and `edge infer` both build before their
// sinks: the bundle on its engine, power sensing and the halting policy,
// and the tuned executor, whose exits go to the pipeline made last
// (newPipeline).
type frames struct {
	bundle *bundle.Bundle
	engine *ort.Engine
	power  *powerRuntime
	exec   *anytime.Executor
	pipe   *pipeline.Pipeline
	log    *slog.Logger
}

// openFrames opens cfg's bundle, starts power sensing and makes the
// executor; on error it releases what it opened. Close releases the rest.
func openFrames(ctx context.Context, cfg Config, log *slog.Logger) (_ *frames, err error) {
	f := &frames{log: log}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.bundle, f.engine, err = openBundle(cfg.Engine, cfg.Engine.Bundle, log); err != nil {
		return nil, err
	}
	if err := cfg.checkBundle(f.bundle); err != nil {
		return nil, err
	}
	if f.power, err = startPower(ctx, cfg.Power, stageSeeds(f.bundle), power.DefaultDeviceSeed(f.engine.Provider(0)), log); err != nil {
		return nil, err
	}
	f.exec, err = anytime.New(f.bundle, f.engine, anytime.Config{
		Policy: f.power.Policy, Meter: f.power.Recorder, HardDeadline: cfg.Power.Limits.Deadline,
		OnExit: func(e anytime.Exit, merged []float32, mask []uint8) { f.pipe.OnExit(e, merged, mask) },
	})
	if err != nil {
		return nil, err
	}
	if err := tune(ctx, f.exec, f.bundle, cfg.Engine, log); err != nil {
		return nil, err
	}
	return f, nil
}

// newPipeline makes the pipeline of src to sinks that the executor's exits
// go to; it takes ownership of src.
func (f *frames) newPipeline(src source.Source, sinks []pipeline.Sink, o pipeline.Options, log *slog.Logger) *pipeline.Pipeline {
	f.pipe = pipeline.New(src, sinks, o, log.With("component", "pipeline"))
	return f.pipe
}

// Close stops power sensing and releases the engine.
func (f *frames) Close() {
	if f.power != nil {
		if err := f.power.Stop(); err != nil {
			f.log.Warn("power sensing stopped with an error", "err", err)
		}
	}
	if f.engine != nil {
		if err := f.engine.Close(); err != nil {
			f.log.Warn("engine close", "err", err)
		}
	}
}
