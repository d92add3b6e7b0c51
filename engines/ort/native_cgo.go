//go:build cgo

package ort

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/native"
	"github.com/anytime-edge/edge/trt"
)

// nativeGraph is a sparse stage's sparse path on the CPU: the stage's plan
// run by our own kernels (engines/native) instead of ONNX Runtime's sparse
// graph, reading and writing the engine's state and logits tensors in place.
type nativeGraph struct {
	stage   *native.Stage
	tables  []bundle.Table
	buffers [][]int64 // one per table, as long as its map
	// index and band hold each stride's valid prefix for the next Run.
	index, band map[int][]int64
	in, state   [][]float32
	logits      []float32
}

// nativeFirst says whether sparse stages run on the CPU: no provider before
// the CPU in opts' order can be set up (an accelerator runs the sparse graph
// itself).
func nativeFirst(opts trt.Options, unavailable map[trt.Provider]error, log *slog.Logger) bool {
	for _, p := range opts.Order {
		if p == trt.CPU {
			return true
		}
		err, known := unavailable[p]
		if !known {
			if err = setUp(p, opts); err != nil {
				unavailable[p] = err
				logUnavailable(log, p, err, opts.Explicit)
			}
		}
		if err == nil {
			return false
		}
	}
	return false
}

// openNative loads sparse stage i's native plan, bound to the engine's
// tensors. The engine's native stages share one set of buffers and workers
// (they run one after another).
func (e *Engine) openNative(b *bundle.Bundle, i int, threads int) (*nativeGraph, error) {
	s := b.Stages[i]
	if e.native == nil {
		if threads <= 0 {
			threads = runtime.NumCPU()
		}
		sh, err := native.NewShared(threads)
		if err != nil {
			return nil, fmt.Errorf("stage %q: native kernels: %w", s.Name, err)
		}
		e.native = sh
	}
	st, err := e.native.Load(b.NativePlanPath(i), b.Input.Height(), b.Input.Width())
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", s.Name, err)
	}
	ng := &nativeGraph{stage: st, tables: s.Tables(), index: map[int][]int64{}, band: map[int][]int64{},
		logits: e.logits[i].GetData()}
	for _, tb := range ng.tables {
		ng.buffers = append(ng.buffers, make([]int64, tableLen(b, tb)))
	}
	for _, name := range st.Inputs() {
		src, ok := strings.CutPrefix(s.Inputs[name], "state:")
		if !ok || e.state[src] == nil {
			st.Close()
			return nil, fmt.Errorf("stage %q: native plan input %q is not a state input of the stage", s.Name, name)
		}
		ng.in = append(ng.in, e.state[src].GetData())
	}
	for _, name := range s.State {
		ng.state = append(ng.state, e.state[name].GetData())
	}
	return ng, nil
}

// run runs the plan with table k holding its first lens[k] entries.
func (ng *nativeGraph) run(ctx context.Context, lens []int) error {
	for k, tb := range ng.tables {
		rows := ng.buffers[k][:lens[k]]
		if tb.Kind == bundle.TableIndex {
			ng.index[tb.Stride] = rows
		} else {
			ng.band[tb.Stride] = rows
		}
	}
	return ng.stage.Run(ctx, ng.in, ng.index, ng.band, ng.state, ng.logits)
}
