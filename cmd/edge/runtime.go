package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/trt"
)

// defaultBundle is the bundle used when --bundle is not given.
const defaultBundle = "models/zoo/fashion-seg-adpc"

// engineFlags are the flags of every command that opens a bundle.
func engineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bundle", Value: defaultBundle, Usage: "model bundle directory", EnvVars: []string{"EDGE_BUNDLE"}},
		&cli.StringFlag{Name: "providers", Value: "tensorrt,cuda,cpu", Usage: "execution providers in order of preference", EnvVars: []string{"EDGE_PROVIDERS"}},
		&cli.IntFlag{Name: "threads", Usage: "CPU intra-op threads (0: ONNX Runtime's choice)", EnvVars: []string{"EDGE_THREADS"}},
		&cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default: $EDGE_ORT_LIB, .deps/, then the system loader path)"},
		&cli.StringFlag{Name: "trt-cache", Usage: "TensorRT engine and timing cache directory (empty: no cache)", EnvVars: []string{"EDGE_TRT_CACHE"}},
		&cli.BoolFlag{Name: "trt-fp16", Value: true, Usage: "let TensorRT use half precision", EnvVars: []string{"EDGE_TRT_FP16"}},
		&cli.IntFlag{Name: "dla-core", Value: -1, Usage: "DLA core for TensorRT (-1: none)", EnvVars: []string{"EDGE_DLA_CORE"}},
		&cli.IntFlag{Name: "device-id", Usage: "CUDA device", EnvVars: []string{"EDGE_DEVICE_ID"}},
		&cli.StringFlag{Name: "blocks-dispatch", Value: "auto", Usage: "blocks stages: auto (measure each bucket against the dense twin at start), sparse (always the sparse graph when a bucket fits) or dense (always the twin)", EnvVars: []string{"EDGE_BLOCKS_DISPATCH"}},
	}
}

// providerOptions turns the engine flags into provider settings.
func providerOptions(c *cli.Context) (trt.Options, error) {
	o := trt.DefaultOptions()
	order, err := trt.ParseProviders(c.String("providers"))
	if err != nil {
		return o, fmt.Errorf("--providers: %w", err)
	}
	o.Order, o.Explicit = order, c.IsSet("providers")
	o.IntraOpThreads = c.Int("threads")
	o.CacheDir = c.String("trt-cache")
	o.FP16 = c.Bool("trt-fp16")
	o.DLACore = c.Int("dla-core")
	o.DeviceID = c.Int("device-id")
	return o, o.Validate()
}

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

// openBundle loads the --bundle and builds its engine.
func openBundle(c *cli.Context, log *slog.Logger) (*bundle.Bundle, *ort.Engine, error) {
	return openBundleAt(c, c.String("bundle"), log)
}

// openBundleAt loads the bundle in dir and builds its engine with the
// command's provider settings.
func openBundleAt(c *cli.Context, dir string, log *slog.Logger) (*bundle.Bundle, *ort.Engine, error) {
	opts, err := providerOptions(c)
	if err != nil {
		return nil, nil, err
	}
	b, err := bundle.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	rt, err := ort.Init(c.String("ort-lib"))
	if err != nil {
		return nil, nil, err
	}
	log.Debug("onnx runtime loaded", "version", rt.Version, "library", rt.Library)
	e, err := ort.Open(rt, b, ort.Config{Providers: opts, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return b, e, nil
}

// calibrate sets how blocks stages dispatch (no-op for other bundles):
// with --blocks-dispatch auto it measures each stage's break-even and logs
// it; sparse and dense force one path.
func calibrate(c *cli.Context, x *anytime.Executor, b *bundle.Bundle, log *slog.Logger) error {
	switch c.String("blocks-dispatch") {
	case "auto":
	case "sparse", "dense":
		for i, s := range b.Stages {
			if s.Mode != bundle.ModeBlocks {
				continue
			}
			bucket := 0
			if c.String("blocks-dispatch") == "sparse" {
				bucket = s.Blocks.Buckets[len(s.Blocks.Buckets)-1]
			}
			x.SetMaxBlocks(i, bucket)
		}
		return nil
	default:
		return fmt.Errorf("--blocks-dispatch %q: want auto, sparse or dense", c.String("blocks-dispatch"))
	}
	cal, err := x.Calibrate(c.Context, 5)
	if err != nil {
		return fmt.Errorf("calibrate blocks stages: %w", err)
	}
	for _, c := range cal {
		log.Info("blocks stage calibrated", "stage", b.Stages[c.Stage].Name, "dense_ms", ms(c.Dense),
			"sparse_up_to_blocks", c.MaxBucket, "of_cells", b.Stages[c.Stage].Blocks.Buckets)
	}
	return nil
}
