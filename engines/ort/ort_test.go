package ort

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/trt"
)

const tinyBundle = "../../testdata/bundles/tiny"

// runtimeOrSkip loads ONNX Runtime from EDGE_ORT_LIB or the project's .deps/.
func runtimeOrSkip(t *testing.T) *Runtime {
	t.Helper()
	rt, err := Init(filepath.Join("..", "..", ".deps", systemLibrary))
	if errors.Is(err, engines.ErrUnavailable) {
		t.Skipf("ONNX Runtime not available (run make setup): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func cpuOptions() trt.Options {
	o := trt.DefaultOptions()
	o.Order = []trt.Provider{trt.CPU}
	o.IntraOpThreads = 1
	return o
}

func openTiny(t *testing.T, dir string, opts trt.Options) (*bundle.Bundle, *Engine) {
	t.Helper()
	rt := runtimeOrSkip(t)
	b, err := bundle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(rt, b, Config{Providers: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return b, e
}

func relL2(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

// TestTinyBundleMatchesPyTorch runs the tiny bundle on the reference input
// and compares every exit with the PyTorch reference dumps.
func TestTinyBundleMatchesPyTorch(t *testing.T) {
	b, e := openTiny(t, tinyBundle, cpuOptions())
	checkAgainstReference(t, tinyBundle, b, e, nil, "")
}

// checkAgainstReference runs dir's reference input and compares each exit's
// merged logits and mask with the dumps; setup adjusts the executor and ran,
// when set, is how every stage after the first must have run.
func checkAgainstReference(t *testing.T, dir string, b *bundle.Bundle, e *Engine, setup func(*anytime.Executor), ran string) {
	t.Helper()
	x, err := npy.Read(filepath.Join(dir, "reference", "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	copy(e.Image(), x.Float32)
	type exitOut struct {
		merged []float32
		mask   []uint8
	}
	var outs []exitOut
	ex, err := anytime.New(b, e, anytime.Config{OnExit: func(_ anytime.Exit, merged []float32, mask []uint8) {
		outs = append(outs, exitOut{append([]float32(nil), merged...), append([]uint8(nil), mask...)})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(ex)
	}
	res, err := ex.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Halt != anytime.ReasonLastExit || len(outs) != len(b.Stages) {
		t.Fatalf("halted %q after %d exits, want all %d", res.Halt, len(outs), len(b.Stages))
	}
	for k, o := range outs {
		want, err := npy.Read(filepath.Join(dir, "reference", fmt.Sprintf("exit%d_logits.npy", k+1)))
		if err != nil {
			t.Fatal(err)
		}
		if d := relL2(o.merged, want.Float32); d > 1e-4 {
			t.Errorf("exit %d: relative L2 %g from PyTorch, want ≤ 1e-4", k+1, d)
		}
		if k > 0 && ran != "" && res.Exits[k].Ran != ran {
			t.Errorf("exit %d ran %q, want %q", k+1, res.Exits[k].Ran, ran)
		}
		if k == len(outs)-1 {
			continue
		}
		wantMask, err := npy.Read(filepath.Join(dir, "reference", fmt.Sprintf("exit%d_mask.npy", k+1)))
		if err != nil {
			t.Fatal(err)
		}
		diff := 0
		for p := range o.mask {
			if o.mask[p] != wantMask.Uint8[p] {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("exit %d: mask differs from PyTorch at %d of %d pixels", k+1, diff, len(o.mask))
		}
	}
	for k, r := range res.Exits {
		if r.Provider != "cpu" {
			t.Errorf("exit %d: provider %q, want cpu", k+1, r.Provider)
		}
	}
}

func TestGPUOnlyProvidersFailOnCPUBuild(t *testing.T) {
	rt := runtimeOrSkip(t)
	b, err := bundle.Load(tinyBundle)
	if err != nil {
		t.Fatal(err)
	}
	o := cpuOptions()
	o.Order = []trt.Provider{trt.TensorRT, trt.CUDA}
	gpuAbsentOrSkip(t, rt, o)
	_, err = Open(rt, b, Config{Providers: o})
	// The npm CPU build lacks the provider libraries; the error must carry
	// the library's reason for each provider, not fall back to the CPU.
	if !errors.Is(err, trt.ErrNoProvider) || !strings.Contains(err.Error(), "tensorrt: ") || !strings.Contains(err.Error(), "cuda: ") {
		t.Fatalf("got %v, want ErrNoProvider with a reason per provider", err)
	}
	for _, s := range Probe(rt, o) {
		if (s.Err == nil) != (s.Provider == trt.CPU) {
			t.Errorf("probe %s: %v", s.Provider, s.Err)
		}
	}
}

func TestShapeMismatchIsRefused(t *testing.T) {
	rt := runtimeOrSkip(t)
	dir := t.TempDir()
	for _, f := range []string{"stage1.onnx", "stage2.onnx", "stage3.onnx", "stage4.onnx"} {
		raw, err := os.ReadFile(filepath.Join(tinyBundle, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), raw, 0o644)
	}
	raw, _ := os.ReadFile(filepath.Join(tinyBundle, "bundle.json"))
	// Claim a 128×256 input: every graph disagrees with it.
	m := strings.Replace(string(raw), "64,\n      128", "128,\n      256", 1)
	if m == string(raw) {
		t.Fatal("could not rewrite the input shape")
	}
	os.WriteFile(filepath.Join(dir, "bundle.json"), []byte(m), 0o644)
	b, err := bundle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(rt, b, Config{Providers: cpuOptions()})
	if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), "stage1.onnx") || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("got %v, want an error naming stage1.onnx and the shape", err)
	}
}

func TestCancelStopsTheFrame(t *testing.T) {
	b, e := openTiny(t, tinyBundle, cpuOptions())
	ex, err := anytime.New(b, e, anytime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ex.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// The engine still works after a cancelled run.
	if _, err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFrameDoesNotAllocate(t *testing.T) {
	b, e := openTiny(t, tinyBundle, cpuOptions())
	ex, err := anytime.New(b, e, anytime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ex.SetThreshold(0.8)
	ex.Run(context.Background())
	if n := testing.AllocsPerRun(5, func() { ex.Run(context.Background()) }); n != 0 {
		t.Errorf("a frame through ONNX Runtime allocates %v times, want 0", n)
	}
}

func TestBucketSizes(t *testing.T) {
	for _, n := range []int{1, 2, 31, 32, 33, 100, 512, 8192, 32768, 32769} {
		sizes := bucketSizes(n)
		if sizes[0] != 1 || sizes[len(sizes)-1] != n {
			t.Errorf("n=%d: buckets run %d..%d, want 1..%d", n, sizes[0], sizes[len(sizes)-1], n)
		}
		for k := 1; k < len(sizes); k++ {
			// Padding a list of sizes[k-1]+1 entries up to sizes[k] adds at most 1/16.
			if sizes[k] <= sizes[k-1] || float64(sizes[k]-sizes[k-1]-1) > float64(sizes[k-1]+1)/16 {
				t.Errorf("n=%d: bucket %d follows %d", n, sizes[k], sizes[k-1])
			}
		}
	}
	if got := len(bucketSizes(32768)); got > 200 {
		t.Errorf("%d buckets for a 128×256 map, want at most 200", got)
	}
}

// TestSparseProfile checks the TensorRT option map of a sparse graph: every
// table input ranges from 1 to its map's pixels, and its engine has a cache
// prefix of its own.
func TestSparseProfile(t *testing.T) {
	b, err := bundle.Load(tinySparse)
	if err != nil {
		t.Fatal(err)
	}
	opts := trt.DefaultOptions()
	opts.CacheDir = "/cache"
	m := opts.TensorRTOptions(trt.StageKey{BundleSHA256: b.SHA256, Stage: "stage4-sparse"}, sparseProfile(b, 3))
	// 64×128 input: strides 4, 8, 16, 32 have 512, 128, 32 and 8 pixels.
	want := map[string]string{
		"trt_profile_min_shapes":  "band16:1,band32:1,band4:1,band8:1,idx16:1,idx32:1,idx4:1,idx8:1",
		"trt_profile_opt_shapes":  "band16:16,band32:4,band4:256,band8:64,idx16:16,idx32:4,idx4:256,idx8:64",
		"trt_profile_max_shapes":  "band16:32,band32:8,band4:512,band8:128,idx16:32,idx32:8,idx4:512,idx8:128",
		"trt_engine_cache_prefix": "edge1_stage4-sparse_" + b.SHA256[:12],
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}
