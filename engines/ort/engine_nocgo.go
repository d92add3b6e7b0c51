//go:build !cgo

package ort

import (
	"context"
	"fmt"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/trt"
)

// Engine is unavailable without cgo.
type Engine struct{}

var errNoCgo = fmt.Errorf("%w: built without cgo; rebuild with CGO_ENABLED=1", engines.ErrUnavailable)

// Init fails: this build has no cgo, so ONNX Runtime cannot be loaded.
func Init(explicit string) (*Runtime, error) { return nil, errNoCgo }

// GraphInfo fails without cgo.
func GraphInfo(path string) (bundle.GraphInfo, error) { return bundle.GraphInfo{}, errNoCgo }

// Open fails without cgo.
func Open(rt *Runtime, b *bundle.Bundle, cfg Config) (*Engine, error) { return nil, errNoCgo }

// setUp fails without cgo.
func setUp(trt.Provider, trt.Options) error { return errNoCgo }

// Image implements engines.Engine.
func (e *Engine) Image() []float32 { return nil }

// Mask implements engines.Engine.
func (e *Engine) Mask() []float32 { return nil }

// Run implements engines.Engine.
func (e *Engine) Run(ctx context.Context, i int) error { return errNoCgo }

// Tables implements engines.Engine.
func (e *Engine) Tables(i int) [][]int64 { return nil }

// Paths implements engines.Engine.
func (e *Engine) Paths(i int) engines.Paths { return 0 }

// RunSparse implements engines.Engine.
func (e *Engine) RunSparse(ctx context.Context, i int, lens []int) error { return errNoCgo }

// RunDense implements engines.Engine.
func (e *Engine) RunDense(ctx context.Context, i int) error { return errNoCgo }

// Logits implements engines.Engine.
func (e *Engine) Logits(i int) []float32 { return nil }

// Provider implements engines.Engine.
func (e *Engine) Provider(i int) string { return "" }

// Close implements engines.Engine.
func (e *Engine) Close() error { return nil }
