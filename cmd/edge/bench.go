package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/source"
)

// benchMode is `edge bench`: the halting-policy simulation with
// --simulate, else the timing.
func benchMode(ctx context.Context, cfg Config, log *slog.Logger, w io.Writer) error {
	if cfg.Bench.Simulate {
		return runSimulation(ctx, cfg, log, w)
	}
	return runBench(ctx, cfg, log, w)
}

// benchReport is what `edge bench` measured.
type benchReport struct {
	Bundle   string    `json:"bundle"`
	Provider string    `json:"provider"`
	Frames   int       `json:"frames"`
	FrameMS  float64   `json:"frame_ms"`
	StageMS  []float64 `json:"stage_ms"`
	Frozen   []float64 `json:"frozen"`
	// With --baseline: the baseline's median frame time and the ratio of
	// the bundle's median to it (same frames, same run).
	Baseline        string  `json:"baseline,omitempty"`
	BaselineFrameMS float64 `json:"baseline_frame_ms,omitempty"`
	FrameRatio      float64 `json:"frame_ratio,omitempty"`
	// Ran counts, per stage, the paths it ran (anytime.Exit.Ran).
	Ran []map[string]int `json:"ran"`
	// GMACs is the mean effective GMACs of a frame; with --baseline,
	// CountedRatio is it over the baseline's, and Realized the share of
	// the counted saving the frame time realised:
	// (1 − frame_ratio) / (1 − counted_ratio), absent when nothing is
	// saved on paper.
	GMACs         float64  `json:"gmacs"`
	BaselineGMACs float64  `json:"baseline_gmacs,omitempty"`
	CountedRatio  float64  `json:"counted_ratio,omitempty"`
	Realized      *float64 `json:"realized,omitempty"`
	// SyntheticMasks are the --active fractions: the masks before stages
	// 2, 3, … were synthetic, not the model's.
	SyntheticMasks []float64 `json:"synthetic_masks,omitempty"`
}

// timed is one bundle opened for timing.
type timed struct {
	bundle *bundle.Bundle
	exec   *anytime.Executor
	close  func() error
	frames []float64
	stages [][]float64
	frozen [][]float64
	ran    []map[string]int
	gmacs  []float64
}

// openTimed opens the bundle in dir with cfg's engine settings.
// With active fractions, its masks are synthetic (anytime.OperatingPoint).
func openTimed(ctx context.Context, cfg EngineConfig, dir string, active []float64, log *slog.Logger) (*timed, string, error) {
	b, engine, err := openBundle(cfg, dir, log)
	if err != nil {
		return nil, "", err
	}
	var xc anytime.Config
	if active != nil {
		if xc.Masks, err = anytime.OperatingPoint(b, active, 1); err != nil {
			engine.Close()
			return nil, "", fmt.Errorf("--active: %w", err)
		}
	}
	x, err := anytime.New(b, engine, xc)
	if err != nil {
		engine.Close()
		return nil, "", err
	}
	if err := tune(ctx, x, b, cfg, log); err != nil {
		engine.Close()
		return nil, "", err
	}
	n := len(b.Stages)
	t := &timed{bundle: b, exec: x, close: engine.Close, stages: make([][]float64, n), frozen: make([][]float64, n), ran: make([]map[string]int, n)}
	for i := range t.ran {
		t.ran[i] = map[string]int{}
	}
	return t, engine.Provider(0), nil
}

// frame runs one image and records its times unless warm-up.
func (t *timed) frame(ctx context.Context, img *image.RGBA, record bool) error {
	imaging.Preprocess(t.exec.Image(), img, t.bundle.Input)
	t0 := time.Now()
	res, err := t.exec.Run(ctx)
	if err != nil || !record {
		return err
	}
	t.frames = append(t.frames, ms(time.Since(t0)))
	for _, e := range res.Exits {
		t.stages[e.Exit-1] = append(t.stages[e.Exit-1], ms(e.Stage))
		t.frozen[e.Exit-1] = append(t.frozen[e.Exit-1], e.Frozen)
		t.ran[e.Exit-1][e.Ran]++
	}
	t.gmacs = append(t.gmacs, res.Exits[len(res.Exits)-1].GMACs)
	return nil
}

// runBench is `edge bench` without --simulate.
func runBench(ctx context.Context, cfg Config, log *slog.Logger, w io.Writer) error {
	images, err := loadFrames(ctx, cfg.Bench.Images)
	if err != nil {
		return err
	}
	main, provider, err := openTimed(ctx, cfg.Engine, cfg.Engine.Bundle, cfg.Bench.Active, log)
	if err != nil {
		return err
	}
	defer main.close()
	runs := []*timed{main}
	if dir := cfg.Bench.Baseline; dir != "" {
		base, _, err := openTimed(ctx, cfg.Engine, dir, cfg.Bench.Active, log)
		if err != nil {
			return err
		}
		defer base.close()
		runs = append(runs, base)
	}
	run := context.WithoutCancel(ctx)
	// Bundles alternate frame by frame, so load changes hit both alike.
	for pass := 0; pass <= cfg.Bench.Frames && ctx.Err() == nil; pass++ {
		for _, img := range images {
			for _, r := range runs {
				if err := r.frame(run, img, pass > 0); err != nil {
					return err
				}
			}
		}
	}
	rep := benchReport{Bundle: main.bundle.Name, Provider: provider, Frames: len(main.frames), FrameMS: median(main.frames),
		Ran: main.ran, GMACs: mean(main.gmacs), SyntheticMasks: cfg.Bench.Active}
	for i := range main.stages {
		rep.StageMS = append(rep.StageMS, median(main.stages[i]))
		rep.Frozen = append(rep.Frozen, mean(main.frozen[i]))
	}
	if len(runs) > 1 {
		rep.Baseline = runs[1].bundle.Name
		rep.BaselineFrameMS = median(runs[1].frames)
		rep.FrameRatio = rep.FrameMS / rep.BaselineFrameMS
		rep.BaselineGMACs = mean(runs[1].gmacs)
		rep.CountedRatio = rep.GMACs / rep.BaselineGMACs
		if rep.CountedRatio < 1 {
			r := (1 - rep.FrameRatio) / (1 - rep.CountedRatio)
			rep.Realized = &r
		}
	}
	return writeBench(w, cfg.Bench.JSON, rep)
}

// writeBench prints rep as text or, with asJSON, one JSON object.
func writeBench(w io.Writer, asJSON bool, rep benchReport) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintf(w, "%s on %s, %d timed frames (medians)\n", rep.Bundle, rep.Provider, rep.Frames)
	if rep.SyntheticMasks != nil {
		fmt.Fprintf(w, "  masks are SYNTHETIC (--active): stages 2.. compute %v of the pixels\n", rep.SyntheticMasks)
	}
	for i, m := range rep.StageMS {
		fmt.Fprintf(w, "  stage %d  %8.3f ms  frozen %.3f  ran %s\n", i+1, m, rep.Frozen[i], ranSummary(rep.Ran[i]))
	}
	fmt.Fprintf(w, "  frame    %8.3f ms  %.3f GMACs\n", rep.FrameMS, rep.GMACs)
	if rep.Baseline != "" {
		fmt.Fprintf(w, "baseline %s: frame %.3f ms, %.3f GMACs; frame ratio %.3f, counted ratio %.3f", rep.Baseline, rep.BaselineFrameMS, rep.BaselineGMACs, rep.FrameRatio, rep.CountedRatio)
		if rep.Realized != nil {
			fmt.Fprintf(w, ", realized %.2f", *rep.Realized)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// ranSummary writes path counts as "sparse ×18, masked ×2".
func ranSummary(counts map[string]int) string {
	var parts []string
	for _, path := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", path, counts[path]))
	}
	return strings.Join(parts, ", ")
}

// loadFrames decodes every readable frame of a file, directory or glob.
func loadFrames(ctx context.Context, uri string) ([]*image.RGBA, error) {
	src, err := source.Open(ctx, uri, source.Options{})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var out []*image.RGBA
	for {
		f, err := src.Next(ctx)
		var fe *source.FrameError
		switch {
		case errors.As(err, &fe):
			continue
		case errors.Is(err, io.EOF):
			if len(out) == 0 {
				return nil, fmt.Errorf("%s: no readable frame", uri)
			}
			return out, nil
		case err != nil:
			return nil, err
		}
		out = append(out, f.Image)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
