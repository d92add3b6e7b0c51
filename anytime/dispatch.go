package anytime

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/masking"
)

// Dispatch says which exact path a sparse stage runs.
type Dispatch int

// Dispatch modes.
const (
	// DispatchAuto runs, per stage and frame, the path Calibrate measured
	// fastest at the frame's computed fraction (the sparse graph until
	// calibrated).
	DispatchAuto Dispatch = iota
	// DispatchSparse always runs the sparse graph.
	DispatchSparse
	// DispatchDense runs the reference masked graph, or the plain dense
	// graph when the mask is all ones and the stage has one.
	DispatchDense
)

// ParseDispatch reads "auto", "sparse" or "dense".
func ParseDispatch(s string) (Dispatch, error) {
	switch s {
	case "auto":
		return DispatchAuto, nil
	case "sparse":
		return DispatchSparse, nil
	case "dense":
		return DispatchDense, nil
	}
	return 0, fmt.Errorf("dispatch %q: want auto, sparse or dense", s)
}

// Paths are the graphs of sparse stages that d can run: an engine needs to
// open only these (engines.Paths).
func (d Dispatch) Paths() engines.Paths {
	switch d {
	case DispatchSparse:
		return engines.PathSparse
	case DispatchDense:
		return engines.PathMasked | engines.PathDense
	}
	return engines.AllPaths
}

func (d Dispatch) String() string {
	switch d {
	case DispatchSparse:
		return "sparse"
	case DispatchDense:
		return "dense"
	}
	return "auto"
}

// Paths a stage ran (Exit.Ran).
const (
	RanDense  = "dense"  // the stage's dense graph (a dense stage, or a sparse stage's plain dense graph)
	RanMasked = "masked" // the dense-with-mask graph (a masked stage, or a sparse stage's reference)
	RanSparse = "sparse" // a sparse stage's sparse graph
)

// sparseStage is the executor's state for one sparse stage.
type sparseStage struct {
	tables *masking.Tables
	bufs   [][]int64 // the engine's table buffers
	lens   []int
	// paths are the paths the engine opened for the stage (a path it did
	// not open is never picked; the others are exact alike).
	paths engines.Paths
	// breakEven is the largest computed fraction (float64 bits) at which
	// the sparse graph runs under DispatchAuto; above it the masked graph
	// runs. ones is the path of an all-ones mask under DispatchAuto.
	breakEven atomic.Uint64
	ones      atomic.Pointer[string]
}

// newSparseStage sets up sparse stage i of b on engine e.
func newSparseStage(b *bundle.Bundle, i int, e engines.Engine) (*sparseStage, error) {
	s := b.Stages[i]
	h, w := b.OutputSize()
	var specs []masking.Table
	for _, t := range s.Tables() {
		specs = append(specs, masking.Table{
			Height: b.Input.Height() / t.Stride, Width: b.Input.Width() / t.Stride,
			Band: t.Kind == bundle.TableBand, Radius: t.Radius,
		})
	}
	paths := e.Paths(i)
	if s.Sparse.Dense == nil {
		paths &^= engines.PathDense
	}
	if paths == 0 {
		return nil, fmt.Errorf("stage %q: the engine opened none of its paths", s.Name)
	}
	bufs := e.Tables(i)
	if paths&engines.PathSparse == 0 {
		return &sparseStage{paths: paths}, nil
	}
	if len(bufs) != len(specs) {
		return nil, fmt.Errorf("stage %q: the engine has %d index tables, the bundle %d", s.Name, len(bufs), len(specs))
	}
	for k, sp := range specs {
		if len(bufs[k]) < sp.Height*sp.Width {
			return nil, fmt.Errorf("stage %q: the engine's table %d holds %d entries, want %d", s.Name, k, len(bufs[k]), sp.Height*sp.Width)
		}
	}
	ss := &sparseStage{tables: masking.NewTables(h, w, specs), bufs: bufs, lens: make([]int, len(specs)), paths: paths}
	ss.breakEven.Store(math.Float64bits(1))
	sparse := RanSparse
	ss.ones.Store(&sparse)
	return ss, nil
}

// has says whether the engine opened path p of the stage.
func (ss *sparseStage) has(p engines.Paths) bool { return ss.paths&p != 0 }

// path is the path sparse stage ss runs for a mask computing a fraction
// active of the pixels: d's choice among the paths the engine opened (all
// are exact, so a dispatch whose paths are not open runs another).
func (ss *sparseStage) path(d Dispatch, active float64) string {
	switch {
	case d == DispatchAuto && active == 1:
		return *ss.ones.Load()
	case d == DispatchAuto && ss.has(engines.PathSparse) &&
		(active <= math.Float64frombits(ss.breakEven.Load()) || !ss.has(engines.PathMasked)):
		return RanSparse
	case d == DispatchSparse && ss.has(engines.PathSparse):
		return RanSparse
	case active == 1 && ss.has(engines.PathDense):
		return RanDense
	case ss.has(engines.PathMasked):
		return RanMasked
	}
	return RanSparse
}

// runSparse runs sparse stage i on the path the dispatcher picks for the
// current mask.
func (x *Executor) runSparse(ctx context.Context, i int, active float64) (string, error) {
	ss := x.sparse[i]
	masking.ToFloat(x.maskFloat, x.mask)
	switch ran := ss.path(Dispatch(x.dispatch.Load()), active); ran {
	case RanSparse:
		ss.tables.Build(x.mask, ss.bufs, ss.lens)
		return ran, x.engine.RunSparse(ctx, i, ss.lens)
	case RanDense:
		return ran, x.engine.RunDense(ctx, i)
	default:
		copy(x.engine.Mask(), x.maskFloat)
		return ran, x.engine.Run(ctx, i)
	}
}

// OperatingPoint makes Config.Masks that hold bundle b at a chosen operating
// point: stage k+2 (k = 0, 1, …) runs on a synthetic mask computing
// fractions[k] of the exit pixels (masking.Synthetic: clustered, nested,
// from seed). There must be one fraction per stage after the first, not
// increasing.
func OperatingPoint(b *bundle.Bundle, fractions []float64, seed uint64) ([][]uint8, error) {
	if len(fractions) != len(b.Stages)-1 {
		return nil, fmt.Errorf("bundle %s has %d stages after the first; got %d computed fractions", b.Name, len(b.Stages)-1, len(fractions))
	}
	h, w := b.OutputSize()
	masks, err := masking.Synthetic(h, w, fractions, seed)
	if err != nil {
		return nil, err
	}
	return append([][]uint8{nil}, masks...), nil
}
