//go:build !cgo

package nvml

import (
	"context"
	"errors"
	"testing"
)

func TestOpenWithoutCgo(t *testing.T) {
	if _, err := Open(Options{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open = %v, want ErrUnavailable", err)
	}
	var s Sampler
	if _, err := s.Sample(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sample = %v, want ErrUnavailable", err)
	}
}
