//go:build !cgo

package ort

import (
	"fmt"

	"github.com/anytime-edge/edge/engines"
)

// Runtime is the process-wide ONNX Runtime environment.
type Runtime struct {
	Version string
	Library string
}

// Init fails: this build has no cgo, so ONNX Runtime cannot be loaded.
func Init(explicit string) (*Runtime, error) {
	return nil, fmt.Errorf("%w: built without cgo; rebuild with CGO_ENABLED=1", engines.ErrUnavailable)
}
