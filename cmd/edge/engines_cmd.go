package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/trt"
)

// enginesCommand manages the TensorRT engine cache: prebuilding at install
// time (the first build takes minutes on a Jetson), listing, pruning.
func enginesCommand() *cli.Command {
	return &cli.Command{
		Name:  "engines",
		Usage: "build, list and prune the TensorRT engine cache",
		Subcommands: []*cli.Command{
			command("build", "build (or load) the TensorRT engine of every stage of a bundle, with progress",
				engineFlags(), engineOnlyConfig, buildEngines),
			command("ls", "list the cache with the bundle and stage each engine was built for",
				cacheFlags(), cacheConfig, listEngines),
			command("prune", "delete engines built for other versions of the bundle's stages (stale)",
				flags(cacheFlags(), []cli.Flag{&cli.BoolFlag{Name: flagDryRun, Usage: "only list what would be deleted", EnvVars: env(flagDryRun)}}),
				cacheConfig, pruneEngines),
		},
	}
}

// listEngines is `edge engines ls`.
func listEngines(_ context.Context, cfg Config, _ *slog.Logger, out io.Writer) error {
	entries, keys, err := cacheAndKeys(cfg)
	if err != nil {
		return err
	}
	stale := map[string]bool{}
	for _, e := range trt.Stale(entries, keys) {
		stale[e.Path] = true
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tSTATE\tSIZE\tBUILT\tPREFIX\tFILE")
	for _, e := range entries {
		state := "-"
		if e.Prefix != "" {
			state = "current"
			if stale[e.Path] {
				state = "stale"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", e.Kind, state, e.Size, e.ModTime.Format(time.DateTime), e.Prefix, e.Path)
	}
	if len(entries) == 0 {
		fmt.Fprintf(w, "(the cache %s is empty)\n", cfg.Cache.Dir)
	}
	return w.Flush()
}

// pruneEngines is `edge engines prune`.
func pruneEngines(_ context.Context, cfg Config, _ *slog.Logger, w io.Writer) error {
	entries, keys, err := cacheAndKeys(cfg)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range trt.Stale(entries, keys) {
		if cfg.Cache.DryRun {
			fmt.Fprintln(w, "would delete", e.Path)
			continue
		}
		if err := os.Remove(e.Path); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(w, "deleted", e.Path)
	}
	return errors.Join(errs...)
}

// cacheAndKeys lists the cache and the stage keys of the bundle in force.
func cacheAndKeys(cfg Config) ([]trt.CacheEntry, []trt.StageKey, error) {
	b, err := bundle.Load(cfg.Engine.Bundle)
	if err != nil {
		return nil, nil, err
	}
	entries, err := trt.ListCache(cfg.Cache.Dir)
	if err != nil {
		return nil, nil, err
	}
	return entries, stageKeys(b), nil
}

func stageKeys(b *bundle.Bundle) []trt.StageKey {
	keys := make([]trt.StageKey, len(b.Stages))
	for i, s := range b.Stages {
		keys[i] = trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name}
	}
	return keys
}

// buildEngines creates every stage's session on TensorRT only (its engine is
// built or loaded from the cache), then runs every path of every stage once
// so that nothing is left to build at the first real frame.
func buildEngines(ctx context.Context, cfg Config, log *slog.Logger, w io.Writer) error {
	opts := cfg.Engine.Providers
	if opts.CacheDir == "" {
		return errors.New("engines build: --trt-cache DIR is required (the engines must be kept somewhere)")
	}
	opts.Order = []trt.Provider{trt.TensorRT}
	b, err := bundle.Load(cfg.Engine.Bundle)
	if err != nil {
		return err
	}
	rt, err := ort.Init(cfg.Engine.ORTLib)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "building %d TensorRT engines of %s into %s (minutes per stage on a Jetson)\n", len(b.Stages), b.Name, opts.CacheDir)
	start := time.Now()
	e, err := ort.Open(rt, b, ort.Config{Providers: opts, Log: log, OnStage: func(i int, name string, _ trt.Provider, took time.Duration) {
		fmt.Fprintf(w, "%s %d/%d %s ready in %v\n", progressBar(i+1, len(b.Stages), 20), i+1, len(b.Stages), name, took.Round(time.Millisecond))
	}})
	if errors.Is(err, trt.ErrNoProvider) {
		return fmt.Errorf("engines build: TensorRT is not available on this host, so no engine can be built here (build on the Jetson itself): %w", err)
	}
	if err != nil {
		return err
	}
	defer e.Close()
	x, err := anytime.New(b, e, anytime.Config{})
	if err != nil {
		return err
	}
	// Every path of every sparse stage runs once, so each of their
	// engines is built now too.
	if _, err := x.Calibrate(context.WithoutCancel(ctx), 1); err != nil {
		return fmt.Errorf("engines build: warm-up of every path: %w", err)
	}
	x.SetThreshold(2) // run every stage
	if _, err := x.Run(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("engines build: warm-up frame: %w", err)
	}
	fmt.Fprintf(w, "done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// progressBar draws done/total as [#####.....].
func progressBar(done, total, width int) string {
	n := done * width / total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < n {
			bar[i] = '#'
		}
	}
	return "[" + string(bar) + "]"
}
