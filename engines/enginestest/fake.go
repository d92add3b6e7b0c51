// Package enginestest has a pure-Go engines.Engine for tests.
package enginestest

import (
	"context"
	"fmt"

	"github.com/anytime-edge/edge/engines"
)

// Fake is an engines.Engine whose stages compute their logits with Compute.
type Fake struct {
	image, mask []float32
	logits      [][]float32
	// Compute fills logits for stage i from the image and the mask fed to
	// it; nil leaves the logits as they are.
	Compute func(i int, image, mask, logits []float32) error
	// Runs lists the stages run, in order.
	Runs []int
}

var _ engines.Engine = (*Fake)(nil)

// NewFake makes a fake of the given number of stages whose image has
// imageLen values and whose exits have channels×hw values.
func NewFake(stages, imageLen, channels, hw int) *Fake {
	f := &Fake{image: make([]float32, imageLen), mask: make([]float32, hw)}
	for range stages {
		f.logits = append(f.logits, make([]float32, channels*hw))
	}
	return f
}

// Image implements engines.Engine.
func (f *Fake) Image() []float32 { return f.image }

// Mask implements engines.Engine.
func (f *Fake) Mask() []float32 { return f.mask }

// Logits implements engines.Engine.
func (f *Fake) Logits(i int) []float32 { return f.logits[i] }

// Provider implements engines.Engine.
func (f *Fake) Provider(int) string { return "fake" }

// Run implements engines.Engine.
func (f *Fake) Run(ctx context.Context, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if i < 0 || i >= len(f.logits) {
		return fmt.Errorf("no stage %d", i)
	}
	f.Runs = append(f.Runs, i)
	if f.Compute != nil {
		return f.Compute(i, f.image, f.mask, f.logits[i])
	}
	return nil
}

// Close implements engines.Engine.
func (f *Fake) Close() error { return nil }
