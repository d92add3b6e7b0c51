package ort

import (
	"log/slog"
	"math/bits"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/trt"
)

// This file holds what the cgo build and its no-cgo twin share; each build
// supplies Init, Open, GraphInfo, the Engine and setUp.

// Runtime is the process-wide ONNX Runtime environment.
type Runtime struct {
	// Version is the library's version, e.g. "1.24.1".
	Version string
	// Library is the path it was loaded from.
	Library string
}

// Config is how a bundle's engine is built.
type Config struct {
	Providers trt.Options
	Log       *slog.Logger
	// OnStage, when set, is called after each stage's session is created
	// (where TensorRT builds or loads its engine), for progress reports.
	OnStage func(i int, name string, provider trt.Provider, took time.Duration)
	// Paths are the graphs opened for sparse stages (each holds its own
	// copy of the weights); zero opens all three.
	Paths engines.Paths
	// SparseGraphOnCPU runs sparse stages' ONNX sparse graph on the CPU
	// too, instead of their native plan (engines/native), which is the
	// CPU's sparse path whenever the bundle has one: to compare the two,
	// and to test the graph an accelerator runs.
	SparseGraphOnCPU bool
}

// ProviderStatus says whether a provider can be set up here and, if not, the
// library's reason.
type ProviderStatus struct {
	Provider trt.Provider
	Err      error
}

// Probe tries to set up each provider this build knows on fresh session
// options.
func Probe(rt *Runtime, opts trt.Options) []ProviderStatus {
	var out []ProviderStatus
	for _, p := range []trt.Provider{trt.TensorRT, trt.CUDA, trt.CPU} {
		out = append(out, ProviderStatus{Provider: p, Err: setUp(p, opts)})
	}
	return out
}

// bucketSizes are the lengths a table of capacity n is padded to: every
// length up to 31, then 16 per octave, so padding adds at most 1/16.
func bucketSizes(n int) []int {
	var out []int
	for b := 1; b < n; {
		out = append(out, b)
		if shift := bits.Len(uint(b)) - 5; shift > 0 {
			b += 1 << shift
		} else {
			b++
		}
	}
	return append(out, max(n, 1))
}

// tableLen is the capacity of an index table: its map's pixel count.
func tableLen(b *bundle.Bundle, t bundle.Table) int {
	return (b.Input.Height() / t.Stride) * (b.Input.Width() / t.Stride)
}

// sparseProfile is the TensorRT optimisation profile of sparse stage i's
// sparse graph: each table's length ranges over 1 (an empty list is padded
// to one −1) to its map's pixel count, optimised for half of it.
func sparseProfile(b *bundle.Bundle, i int) *trt.Profile {
	p := &trt.Profile{}
	for _, tb := range b.Stages[i].Tables() {
		n := int64(max(1, tableLen(b, tb)))
		p.Min = append(p.Min, trt.Shape{Name: tb.Input, Dims: []int64{1}})
		p.Opt = append(p.Opt, trt.Shape{Name: tb.Input, Dims: []int64{max(1, n/2)}})
		p.Max = append(p.Max, trt.Shape{Name: tb.Input, Dims: []int64{n}})
	}
	return p
}
