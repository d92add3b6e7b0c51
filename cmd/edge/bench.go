package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/imaging"
)

func benchCommand() *cli.Command {
	flags := append(engineFlags(),
		&cli.BoolFlag{Name: "simulate", Usage: "run the halting policy on a simulated device instead (no bundle, no hardware)"},
		&cli.IntFlag{Name: "frames", Value: 50, Usage: "frames to time after one warm-up frame"},
		&cli.Float64Flag{Name: "threshold", Usage: "confidence threshold (default: the bundle's)"},
		&cli.StringFlag{Name: "image", Value: "testdata/images/street.png", Usage: "frame to run"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		&cli.StringFlag{Name: "blocks", Usage: "instead of timing, report the pixel- and block-level active fractions per exit over --images, for these block sizes (e.g. 8,16,32)"},
		&cli.StringFlag{Name: "images", Value: "testdata/images", Usage: "directory or glob of frames for --blocks"},
	)
	flags = append(flags, simulateFlags()...)
	return &cli.Command{
		Name:   "bench",
		Usage:  "time every exit of a bundle on one frame (or, with --simulate, check the halting policy)",
		Flags:  flags,
		Before: applyConfigFile,
		Action: func(c *cli.Context) error {
			if c.Bool("simulate") {
				return runSimulation(c)
			}
			if c.String("blocks") != "" {
				return runBlockFractions(c)
			}
			return runBench(c)
		},
	}
}

// benchReport is the median time of each exit and of whole frames.
type benchReport struct {
	Bundle   string    `json:"bundle"`
	Provider string    `json:"provider"`
	Frames   int       `json:"frames"`
	StageMS  []float64 `json:"stage_ms"`
	FrameMS  float64   `json:"frame_ms"`
	Frozen   []float64 `json:"frozen"`
}

func runBench(c *cli.Context) error {
	log, err := newLogger(c, false)
	if err != nil {
		return err
	}
	if c.Int("frames") < 1 {
		return fmt.Errorf("--frames %d: want at least 1", c.Int("frames"))
	}
	b, engine, err := openBundle(c, log)
	if err != nil {
		return err
	}
	defer engine.Close()
	img, err := imaging.Load(c.String("image"))
	if err != nil {
		return err
	}
	x, err := anytime.New(b, engine, anytime.Config{})
	if err != nil {
		return err
	}
	if c.IsSet("threshold") {
		x.SetThreshold(float32(c.Float64("threshold")))
	}
	imaging.Preprocess(x.Image(), img, b.Input)
	stages := make([][]float64, len(b.Stages))
	frozen := make([]float64, len(b.Stages))
	var frames []float64
	for i := 0; i <= c.Int("frames"); i++ {
		t0 := time.Now()
		res, err := x.Run(context.WithoutCancel(c.Context))
		if err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up
		}
		frames = append(frames, ms(time.Since(t0)))
		for _, e := range res.Exits {
			stages[e.Exit-1] = append(stages[e.Exit-1], ms(e.Stage))
			frozen[e.Exit-1] = e.Frozen
		}
		if c.Context.Err() != nil {
			break
		}
	}
	rep := benchReport{Bundle: b.Name, Provider: engine.Provider(0), Frames: len(frames), FrameMS: median(frames), Frozen: frozen}
	for _, s := range stages {
		rep.StageMS = append(rep.StageMS, median(s))
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintf(w, "%s on %s, %d frames (medians)\n", rep.Bundle, rep.Provider, rep.Frames)
	for i, m := range rep.StageMS {
		fmt.Fprintf(w, "  stage %d  %8.3f ms  frozen %.3f\n", i+1, m, rep.Frozen[i])
	}
	fmt.Fprintf(w, "  frame    %8.3f ms\n", rep.FrameMS)
	return nil
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
