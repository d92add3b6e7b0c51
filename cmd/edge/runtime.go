package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/power"
)

// stageSeeds is what the bundle says about each stage's work, for seeding
// the power policy's cost model.
func stageSeeds(b *bundle.Bundle) []power.StageSeed {
	seeds := make([]power.StageSeed, len(b.Stages))
	for i, s := range b.Stages {
		seeds[i].FixedGMACs = float64(s.MACs.Fixed) / (1 << 30)
		for _, m := range s.MACs.Masked {
			seeds[i].MaskedGMACs += float64(m.MACs) / (1 << 30)
		}
	}
	return seeds
}

// openBundle loads the bundle in dir (cfg.Bundle, or a baseline) and
// builds its engine with cfg's provider settings.
func openBundle(cfg EngineConfig, dir string, log *slog.Logger) (*bundle.Bundle, *ort.Engine, error) {
	b, err := bundle.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	rt, err := ort.Init(cfg.ORTLib)
	if err != nil {
		return nil, nil, err
	}
	log.Debug("onnx runtime loaded", "version", rt.Version, "library", rt.Library)
	e, err := ort.Open(rt, b, ort.Config{Providers: cfg.Providers, Log: log, Paths: cfg.Dispatch.Paths()})
	if err != nil {
		return nil, nil, err
	}
	return b, e, nil
}

// tune applies cfg's threshold and dispatch to the executor (dispatch
// matters to sparse stages only): with DispatchAuto it measures each
// stage's paths and logs the break-even; sparse and dense force one path.
func tune(ctx context.Context, x *anytime.Executor, b *bundle.Bundle, cfg EngineConfig, log *slog.Logger) error {
	if cfg.Threshold != nil {
		x.SetThreshold(*cfg.Threshold)
	}
	x.SetDispatch(cfg.Dispatch)
	if cfg.Dispatch != anytime.DispatchAuto {
		return nil
	}
	cal, err := x.Calibrate(ctx, 5)
	if err != nil {
		return fmt.Errorf("calibrate the dispatcher: %w", err)
	}
	for _, c := range cal {
		log.Info("sparse stage calibrated", "stage", b.Stages[c.Stage].Name, "sparse_ms_at_1", ms(c.Sparse[1]),
			"sparse_ms_at_0.25", ms(c.Sparse[0.25]), "masked_ms", ms(c.Masked), "dense_ms", ms(c.Dense),
			"sparse_up_to", c.BreakEven, "all_ones", c.Ones)
	}
	return nil
}
