//go:build cgo

package ort

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/trt"
)

// sparseGraph is a sparse stage's sparse graph: one session with a dynamic
// length per index table. Each table has one buffer as long as its map and
// pre-made tensors viewing its first 1, 2, … entries (the buckets), so a
// frame picks the smallest bucket that holds its list, pads it with −1 and
// runs without creating a tensor: no allocation in our code, and lengths
// that TensorRT's optimisation profile (1 … the map) covers.
type sparseGraph struct {
	session  *onnx.DynamicAdvancedSession
	provider trt.Provider
	tables   []*table  // in bundle.Stage.Tables order
	buffers  [][]int64 // each table's data, for Tables
	// inputs are the graph's inputs in session order, the table entries
	// swapped for the bucket of each run; outputs the shared state and
	// logits.
	inputs, outputs []onnx.Value
}

// table is one index table's buffer and its bucket tensors.
type table struct {
	input   string
	pos     int // position in sparseGraph.inputs
	data    []int64
	sizes   []int // bucket lengths, ascending, the last len(data)
	tensors []*onnx.Tensor[int64]
}

// Run runs the graph on the inputs of the last RunSparse.
func (g *sparseGraph) Run() error { return g.session.Run(g.inputs, g.outputs) }

// RunWithOptions is Run with run options.
func (g *sparseGraph) RunWithOptions(o *onnx.RunOptions) error {
	return g.session.RunWithOptions(g.inputs, g.outputs, o)
}

func (g *sparseGraph) destroy() error {
	var errs []error
	if g.session != nil {
		errs = append(errs, g.session.Destroy())
	}
	for _, t := range g.tables {
		for _, v := range t.tensors {
			errs = append(errs, v.Destroy())
		}
	}
	return errors.Join(errs...)
}

// checkSparse reads sparse stage i's masked and dense graphs and checks them
// with its sparse graph g; it returns the masked graph's information.
func checkSparse(b *bundle.Bundle, i int, g bundle.GraphInfo) (bundle.GraphInfo, error) {
	masked, err := GraphInfo(b.MaskedPath(i))
	if err != nil {
		return masked, err
	}
	var dense bundle.GraphInfo
	if path := b.PlainDensePath(i); path != "" {
		if dense, err = GraphInfo(path); err != nil {
			return masked, err
		}
	}
	return masked, b.CheckSparseGraphs(i, g, masked, dense)
}

// openSparseStage opens sparse stage i's graphs among paths: the masked
// graph (masked, its information), the sparse graph (g) and the plain dense
// graph. The stage's provider is the first opened graph's.
func (e *Engine) openSparseStage(b *bundle.Bundle, i int, g, masked bundle.GraphInfo, outNames []string, outVals []onnx.Value, opts trt.Options, paths engines.Paths, unavailable map[trt.Provider]error, log *slog.Logger) (*stage, error) {
	s := b.Stages[i]
	st := &stage{name: s.Name, isSparse: true}
	var err error
	if st.run, err = onnx.NewRunOptions(); err != nil {
		return st, fmt.Errorf("stage %q: run options: %w", s.Name, err)
	}
	native := paths&engines.PathSparse != 0 && b.NativePlanPath(i) != "" && !e.sparseGraphOnCPU && nativeFirst(opts, unavailable, log)
	if native && paths == engines.AllPaths {
		// The native plan is exact at every mask and, measured, at least
		// as fast as the masked and dense graphs at every computed
		// fraction (docs/sparse.md): holding their weights as well would
		// double the stage's memory for nothing.
		paths = engines.PathSparse
	}
	var providers []trt.Provider
	if paths&engines.PathMasked != 0 {
		inNames, inVals, err := e.bind(s, masked, nil)
		if err != nil {
			return st, err
		}
		path := b.MaskedPath(i)
		key := trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name + "-masked"}
		p, err := choose(opts, key, nil, unavailable, log, s.Name+" (masked)", path, func(so *onnx.SessionOptions) (err error) {
			st.session, err = onnx.NewAdvancedSession(path, inNames, outNames, inVals, outVals, so)
			return err
		})
		if err != nil {
			return st, err
		}
		providers = append(providers, p)
	}
	switch {
	case paths&engines.PathSparse == 0:
	case native:
		if st.native, err = e.openNative(b, i, opts.IntraOpThreads); err != nil {
			return st, err
		}
		providers = append(providers, trt.CPU)
	default:
		if st.sparse, err = e.openSparse(b, i, g, outNames, outVals, opts, unavailable, log); err != nil {
			return st, err
		}
		providers = append(providers, st.sparse.provider)
	}
	if paths&engines.PathDense != 0 {
		if st.dense, st.denseProvider, err = e.openPlainDense(b, i, outNames, outVals, opts, unavailable, log); err != nil {
			return st, err
		}
		if st.dense != nil {
			providers = append(providers, st.denseProvider)
		}
	}
	if len(providers) == 0 {
		return st, fmt.Errorf("stage %q: no graph opened (paths %b)", s.Name, paths)
	}
	st.provider = providers[0]
	log.Info("stage ready", "stage", s.Name, "providers", providers)
	return st, nil
}

// openSparse creates sparse stage i's sparse session and its table tensors.
func (e *Engine) openSparse(b *bundle.Bundle, i int, g bundle.GraphInfo, outNames []string, outVals []onnx.Value, opts trt.Options, unavailable map[trt.Provider]error, log *slog.Logger) (*sparseGraph, error) {
	s := b.Stages[i]
	sg := &sparseGraph{outputs: outVals}
	extra := map[string]onnx.Value{}
	for _, tb := range s.Tables() {
		n := tableLen(b, tb)
		t := &table{input: tb.Input, data: make([]int64, n), sizes: bucketSizes(n)}
		sg.tables = append(sg.tables, t)
		sg.buffers = append(sg.buffers, t.data)
		for _, size := range t.sizes {
			v, err := onnx.NewTensor(onnx.NewShape(int64(size)), t.data)
			if err != nil {
				return sg, fmt.Errorf("stage %q: table %q: %w", s.Name, tb.Input, err)
			}
			t.tensors = append(t.tensors, v)
		}
		extra[tb.Input] = t.tensors[len(t.tensors)-1]
	}
	inNames, inVals, err := e.bind(s, g, extra)
	if err != nil {
		return sg, err
	}
	sg.inputs = inVals
	for _, t := range sg.tables {
		t.pos = slices.Index(inNames, t.input)
	}
	key := trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name + "-sparse"}
	path := b.StagePath(i)
	sg.provider, err = choose(opts, key, sparseProfile(b, i), unavailable, log, s.Name+" (sparse)", path, func(so *onnx.SessionOptions) (err error) {
		sg.session, err = onnx.NewDynamicAdvancedSession(path, inNames, outNames, so)
		return err
	})
	return sg, err
}

// openPlainDense creates sparse stage i's plain dense session; nil when the
// stage has no dense graph.
func (e *Engine) openPlainDense(b *bundle.Bundle, i int, outNames []string, outVals []onnx.Value, opts trt.Options, unavailable map[trt.Provider]error, log *slog.Logger) (*onnx.AdvancedSession, trt.Provider, error) {
	path := b.PlainDensePath(i)
	if path == "" {
		return nil, "", nil
	}
	s := b.Stages[i]
	g, err := GraphInfo(path)
	if err != nil {
		return nil, "", err
	}
	inNames, inVals, err := e.bind(s, g, nil)
	if err != nil {
		return nil, "", err
	}
	var session *onnx.AdvancedSession
	key := trt.StageKey{BundleSHA256: b.SHA256, Stage: s.Name + "-dense"}
	p, err := choose(opts, key, nil, unavailable, log, s.Name+" (dense)", path, func(so *onnx.SessionOptions) (err error) {
		session, err = onnx.NewAdvancedSession(path, inNames, outNames, inVals, outVals, so)
		return err
	})
	return session, p, err
}

// Paths implements engines.Engine.
func (e *Engine) Paths(i int) engines.Paths {
	s := e.stages[i]
	if !s.isSparse {
		return 0
	}
	var p engines.Paths
	if s.sparse != nil || s.native != nil {
		p |= engines.PathSparse
	}
	if s.session != nil {
		p |= engines.PathMasked
	}
	if s.dense != nil {
		p |= engines.PathDense
	}
	return p
}

// Tables implements engines.Engine.
func (e *Engine) Tables(i int) [][]int64 {
	if ng := e.stages[i].native; ng != nil {
		return ng.buffers
	}
	if sg := e.stages[i].sparse; sg != nil {
		return sg.buffers
	}
	return nil
}

// RunSparse implements engines.Engine: the native plan where the stage runs
// one, else the sparse graph with each table padded with −1 to the smallest
// bucket that holds it.
func (e *Engine) RunSparse(ctx context.Context, i int, lens []int) error {
	s := e.stages[i]
	if ng := s.native; ng != nil {
		if err := checkLens(ng.buffers, lens); err != nil {
			return fmt.Errorf("run stage %q: %w", s.name, err)
		}
		s.last = trt.CPU
		if err := ng.run(ctx, lens); err != nil {
			return fmt.Errorf("run stage %q (sparse, native): %w", s.name, err)
		}
		return nil
	}
	sg := s.sparse
	if sg == nil {
		return fmt.Errorf("run stage %q: not a sparse stage, or its sparse graph was not opened", s.name)
	}
	if err := checkLens(sg.buffers, lens); err != nil {
		return fmt.Errorf("run stage %q: %w", s.name, err)
	}
	for k, t := range sg.tables {
		n := lens[k]
		j, _ := slices.BinarySearch(t.sizes, max(n, 1))
		pad := t.data[n:t.sizes[j]]
		for p := range pad {
			pad[p] = -1
		}
		sg.inputs[t.pos] = t.tensors[j]
	}
	s.last = sg.provider
	if err := e.runGraph(ctx, s, sg); err != nil {
		return fmt.Errorf("run stage %q (sparse): %w", s.name, err)
	}
	return nil
}

// checkLens checks a run's table lengths against the table buffers.
func checkLens(buffers [][]int64, lens []int) error {
	if len(lens) != len(buffers) {
		return fmt.Errorf("%d table lengths for %d tables", len(lens), len(buffers))
	}
	for k, n := range lens {
		if n < 0 || n > len(buffers[k]) {
			return fmt.Errorf("table %d holds %d entries, want 0..%d", k, n, len(buffers[k]))
		}
	}
	return nil
}

// RunDense implements engines.Engine.
func (e *Engine) RunDense(ctx context.Context, i int) error {
	s := e.stages[i]
	if s.dense == nil {
		return fmt.Errorf("run stage %q: no plain dense graph, or it was not opened", s.name)
	}
	s.last = s.denseProvider
	if err := e.runGraph(ctx, s, s.dense); err != nil {
		return fmt.Errorf("run stage %q (dense): %w", s.name, err)
	}
	return nil
}
