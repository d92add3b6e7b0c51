//go:build !cgo

package ort

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/trt"
)

// Config is how a bundle's engine is built.
type Config struct {
	Providers trt.Options
	Log       *slog.Logger
	OnStage   func(i int, name string, provider trt.Provider, took time.Duration)
}

// Engine is unavailable without cgo.
type Engine struct{}

// ProviderStatus says whether a provider can be set up here.
type ProviderStatus struct {
	Provider trt.Provider
	Err      error
}

var errNoCgo = fmt.Errorf("%w: built without cgo", engines.ErrUnavailable)

// GraphInfo fails without cgo.
func GraphInfo(path string) (bundle.GraphInfo, error) { return bundle.GraphInfo{}, errNoCgo }

// Open fails without cgo.
func Open(rt *Runtime, b *bundle.Bundle, cfg Config) (*Engine, error) { return nil, errNoCgo }

// Probe reports every provider unavailable.
func Probe(rt *Runtime, opts trt.Options) []ProviderStatus {
	var out []ProviderStatus
	for _, p := range []trt.Provider{trt.TensorRT, trt.CUDA, trt.CPU} {
		out = append(out, ProviderStatus{Provider: p, Err: errNoCgo})
	}
	return out
}

// Image implements engines.Engine.
func (e *Engine) Image() []float32 { return nil }

// Mask implements engines.Engine.
func (e *Engine) Mask() []float32 { return nil }

// Run implements engines.Engine.
func (e *Engine) Run(ctx context.Context, i int) error { return errNoCgo }

// BlockInputs implements engines.Engine.
func (e *Engine) BlockInputs(i, bucket int) (ids, neighbours []int64) { return nil, nil }

// RunBlocks implements engines.Engine.
func (e *Engine) RunBlocks(ctx context.Context, i, bucket int) error { return errNoCgo }

// Logits implements engines.Engine.
func (e *Engine) Logits(i int) []float32 { return nil }

// Provider implements engines.Engine.
func (e *Engine) Provider(i int) string { return "" }

// Close implements engines.Engine.
func (e *Engine) Close() error { return nil }
