package ort

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/internal/npy"
)

// tinySparse is the tiny bundle exported in sparse mode, with PyTorch
// reference dumps of the masked forward.
const tinySparse = "../../testdata/bundles/tiny-sparse"

// sparseEngines are the two ways a sparse stage's sparse path runs on the
// CPU: the native plan (the default) and ONNX Runtime's sparse graph (what
// an accelerator runs).
var sparseEngines = []struct {
	name       string
	graphOnCPU bool
}{{"native", false}, {"graph", true}}

// openSparseTiny opens the sparse tiny bundle on the CPU, its sparse path
// run natively or by the ONNX sparse graph.
func openSparseTiny(t *testing.T, graphOnCPU bool) (*bundle.Bundle, *Engine) {
	t.Helper()
	rt := runtimeOrSkip(t)
	b, err := bundle.Load(tinySparse)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(rt, b, Config{Providers: cpuOptions(), SparseGraphOnCPU: graphOnCPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for i, s := range b.Stages {
		if s.Mode == bundle.ModeSparse && (e.stages[i].native != nil) == graphOnCPU {
			t.Fatalf("stage %q: native plan in use %v, want %v", s.Name, e.stages[i].native != nil, !graphOnCPU)
		}
	}
	return b, e
}

// TestTinySparseBundleMatchesPyTorch runs the sparse tiny bundle on the
// reference input through its sparse path (the native plan and the ONNX
// sparse graph) and through its masked graphs: all match PyTorch's masked
// forward, masks included. (The native engine opens nothing else.)
func TestTinySparseBundleMatchesPyTorch(t *testing.T) {
	for _, eng := range sparseEngines {
		b, e := openSparseTiny(t, eng.graphOnCPU)
		for _, tt := range []struct {
			dispatch anytime.Dispatch
			ran      string
		}{{anytime.DispatchSparse, anytime.RanSparse}, {anytime.DispatchDense, anytime.RanMasked}} {
			if !eng.graphOnCPU && tt.dispatch == anytime.DispatchDense {
				continue
			}
			t.Run(eng.name+"/"+tt.dispatch.String(), func(t *testing.T) {
				checkAgainstReference(t, tinySparse, b, e, func(x *anytime.Executor) { x.SetDispatch(tt.dispatch) }, tt.ran)
			})
		}
	}
}

// runPaths runs one frame of b's reference input with the given replacement
// masks on each dispatch and returns every exit's merged logits and how its
// stages ran.
func runPaths(t *testing.T, dir string, b *bundle.Bundle, e *Engine, masks [][]uint8, dispatch anytime.Dispatch) ([][]float32, []string) {
	t.Helper()
	x, err := npy.Read(filepath.Join(dir, "reference", "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	var outs [][]float32
	var ran []string
	ex, err := anytime.New(b, e, anytime.Config{Masks: masks, OnExit: func(r anytime.Exit, merged []float32, _ []uint8) {
		outs = append(outs, append([]float32(nil), merged...))
		ran = append(ran, r.Ran)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ex.SetDispatch(dispatch)
	copy(e.Image(), x.Float32)
	if _, err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return outs, ran
}

// TestSparsePathsAgree holds the sparse tiny bundle at operating points
// from nothing frozen to almost everything frozen (synthetic masks, where
// the coarse strides can lose every computed pixel) and checks that the
// sparse path (native plan and ONNX sparse graph) gives the masked graphs'
// exits, and — with nothing frozen — the plain dense graphs too.
func TestSparsePathsAgree(t *testing.T) {
	b, e := openSparseTiny(t, false)
	_, eg := openSparseTiny(t, true)
	for _, point := range [][]float64{{1, 1, 1}, {0.82, 0.63, 0.38}, {0.3, 0.05, 0.01}} {
		masks, err := anytime.OperatingPoint(b, point, 3)
		if err != nil {
			t.Fatal(err)
		}
		sparse, ranSparse := runPaths(t, tinySparse, b, e, masks, anytime.DispatchSparse)
		graph, _ := runPaths(t, tinySparse, b, eg, masks, anytime.DispatchSparse)
		dense, ranDense := runPaths(t, tinySparse, b, eg, masks, anytime.DispatchDense)
		want := anytime.RanMasked
		if point[0] == 1 {
			want = anytime.RanDense
		}
		for k := 1; k < len(sparse); k++ {
			if ranSparse[k] != anytime.RanSparse || ranDense[k] != want {
				t.Errorf("%v exit %d: ran %q and %q, want sparse and %s", point, k+1, ranSparse[k], ranDense[k], want)
			}
			if d := relL2(sparse[k], dense[k]); d > 1e-4 {
				t.Errorf("%v exit %d: native sparse path and %s graphs differ by %g relative L2", point, k+1, want, d)
			}
			if d := relL2(graph[k], dense[k]); d > 1e-4 {
				t.Errorf("%v exit %d: sparse and %s graphs differ by %g relative L2", point, k+1, want, d)
			}
		}
	}
}

// TestSparseFrameAllocations bounds what a frame through the sparse path
// allocates: natively nothing; through the sparse graphs our code nothing
// (the tables and bucket tensors are made at open), onnxruntime_go's
// dynamic-session Run two slices plus one 16-byte handle per input and
// output value, per run.
func TestSparseFrameAllocations(t *testing.T) {
	for _, eng := range sparseEngines {
		b, e := openSparseTiny(t, eng.graphOnCPU)
		masks, err := anytime.OperatingPoint(b, []float64{0.82, 0.63, 0.38}, 1)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := anytime.New(b, e, anytime.Config{Masks: masks})
		if err != nil {
			t.Fatal(err)
		}
		ex.SetDispatch(anytime.DispatchSparse)
		ex.Run(context.Background())
		library := 0
		for _, s := range b.Stages {
			if s.Mode == bundle.ModeSparse && eng.graphOnCPU {
				library += 2 + len(s.Inputs) + 1 + len(s.State)
			}
		}
		if n := testing.AllocsPerRun(5, func() { ex.Run(context.Background()) }); n > float64(library) {
			t.Errorf("%s: a sparse frame allocates %v times, want at most the %d of onnxruntime_go's dynamic runs", eng.name, n, library)
		}
	}
}

// TestOpenOnlySomePaths opens the sparse tiny bundle with its sparse path
// only, with its masked and dense graphs only, and with everything that pays
// (the native plan alone: it is exact at every mask): the frames still match
// PyTorch, the engine reports what it opened, and a path not opened is an
// error, not a crash.
func TestOpenOnlySomePaths(t *testing.T) {
	rt := runtimeOrSkip(t)
	b, err := bundle.Load(tinySparse)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		paths, opened engines.Paths
		dispatch      anytime.Dispatch
		ran           string
	}{
		{engines.PathSparse, engines.PathSparse, anytime.DispatchSparse, anytime.RanSparse},
		{engines.PathMasked | engines.PathDense, engines.PathMasked | engines.PathDense, anytime.DispatchDense, anytime.RanMasked},
		{engines.AllPaths, engines.PathSparse, anytime.DispatchAuto, anytime.RanSparse},
		{engines.AllPaths, engines.PathSparse, anytime.DispatchDense, anytime.RanSparse},
	} {
		e, err := Open(rt, b, Config{Providers: cpuOptions(), Paths: tt.paths})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Paths(1); got != tt.opened {
			t.Errorf("paths %b: opened %b, want %b", tt.paths, got, tt.opened)
		}
		if got := e.Paths(0); got != 0 {
			t.Errorf("the dense first stage reports paths %b", got)
		}
		checkAgainstReference(t, tinySparse, b, e, func(x *anytime.Executor) { x.SetDispatch(tt.dispatch) }, tt.ran)
		ctx := context.Background()
		if tt.opened&engines.PathSparse == 0 {
			if err := e.RunSparse(ctx, 1, make([]int, len(b.Stages[1].Tables()))); err == nil {
				t.Error("RunSparse ran without the sparse graph")
			}
		} else if e.Run(ctx, 1) == nil || e.RunDense(ctx, 1) == nil {
			t.Error("the masked or dense graph ran without being opened")
		}
		e.Close()
	}
}
