package ort

import (
	"log/slog"
	"time"

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
