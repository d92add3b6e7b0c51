//go:build !cgo

package nvml

import (
	"context"
	"fmt"

	"github.com/anytime-edge/edge/power"
)

// Sampler is the no-cgo stand-in; it is never returned.
type Sampler struct{}

// Open always fails: go-nvml needs cgo.
func Open(Options) (*Sampler, error) {
	return nil, fmt.Errorf("nvml: built without cgo: %w", ErrUnavailable)
}

// Name is empty.
func (s *Sampler) Name() string { return "" }

// Sample fails with ErrUnavailable.
func (s *Sampler) Sample(context.Context) (power.Reading, error) {
	return power.Reading{}, ErrUnavailable
}

// Close does nothing.
func (s *Sampler) Close() error { return nil }
