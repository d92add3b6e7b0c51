//go:build !cgo

package native

import "context"

// Stage is unavailable without cgo; see the cgo build's documentation.
type Stage struct{}

// Load returns ErrUnavailable: native stages need cgo.
func Load(planPath string, height, width, threads int) (*Stage, error) {
	return nil, ErrUnavailable
}

// Inputs returns nil.
func (s *Stage) Inputs() []string { return nil }

// Strides returns nil.
func (s *Stage) Strides() []int { return nil }

// Run returns ErrUnavailable.
func (s *Stage) Run(ctx context.Context, in [][]float32, index, band map[int][]int64, state [][]float32, logits []float32) error {
	return ErrUnavailable
}

// Close does nothing.
func (s *Stage) Close() error { return nil }

// Shared is unavailable without cgo.
type Shared struct{}

// NewShared returns ErrUnavailable: native stages need cgo.
func NewShared(threads int) (*Shared, error) { return nil, ErrUnavailable }

// Load returns ErrUnavailable.
func (sh *Shared) Load(planPath string, height, width int) (*Stage, error) {
	return nil, ErrUnavailable
}

// Bytes returns 0.
func (sh *Shared) Bytes() int64 { return 0 }

// Close does nothing.
func (sh *Shared) Close() error { return nil }
