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
