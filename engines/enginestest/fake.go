// Package enginestest has a pure-Go engines.Engine for tests.
//
// Its place in the tree, and what it may import: docs/architecture.md.
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
	// SparseRuns and DenseRuns list the stages run by RunSparse and
	// RunDense.
	SparseRuns, DenseRuns []int
	// ComputeSparse fills logits for a RunSparse from the tables (table
	// k holds tables[k][:lens[k]]); nil leaves the logits as they are.
	ComputeSparse func(i int, tables [][]int64, lens []int, logits []float32) error
	// ComputeDense fills logits for a RunDense; nil leaves them.
	ComputeDense func(i int, logits []float32) error
	// Unopened lists, per stage, the paths Paths does not report (the
	// sparse path is reported only with tables).
	Unopened map[int]engines.Paths
	tables   map[int][][]int64
}

// Paths implements engines.Engine.
func (f *Fake) Paths(i int) engines.Paths {
	p := engines.PathMasked | engines.PathDense
	if f.tables[i] != nil {
		p |= engines.PathSparse
	}
	return p &^ f.Unopened[i]
}

// SetTables gives stage i index tables of the given capacities, as a
// sparse stage has.
func (f *Fake) SetTables(i int, sizes ...int) {
	if f.tables == nil {
		f.tables = map[int][][]int64{}
	}
	f.tables[i] = nil
	for _, n := range sizes {
		f.tables[i] = append(f.tables[i], make([]int64, n))
	}
}

// Tables implements engines.Engine.
func (f *Fake) Tables(i int) [][]int64 { return f.tables[i] }

// RunSparse implements engines.Engine.
func (f *Fake) RunSparse(ctx context.Context, i int, lens []int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(lens) != len(f.tables[i]) {
		return fmt.Errorf("stage %d: %d lengths for %d tables", i, len(lens), len(f.tables[i]))
	}
	f.SparseRuns = append(f.SparseRuns, i)
	if f.ComputeSparse != nil {
		return f.ComputeSparse(i, f.tables[i], lens, f.logits[i])
	}
	return nil
}

// RunDense implements engines.Engine.
func (f *Fake) RunDense(ctx context.Context, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.DenseRuns = append(f.DenseRuns, i)
	if f.ComputeDense != nil {
		return f.ComputeDense(i, f.logits[i])
	}
	return nil
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
