//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/anytime-edge/edge/engines"
)

var (
	initMu  sync.Mutex
	current *Runtime
)

// Init loads ONNX Runtime from the first of Candidates(explicit) that loads,
// once per process; later calls return the same Runtime. The error names
// every path tried and the command that installs the library.
func Init(explicit string) (*Runtime, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if current != nil {
		return current, nil
	}
	var tried []string
	for _, path := range Candidates(explicit) {
		if strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				tried = append(tried, fmt.Sprintf("%s (%v)", path, errors.Unwrap(err)))
				continue
			}
		}
		onnx.SetSharedLibraryPath(path)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
			continue
		}
		current = &Runtime{Version: onnx.GetVersion(), Library: path}
		return current, nil
	}
	return nil, fmt.Errorf("%w: ONNX Runtime 1.24 library not found or not loadable; tried %s; install it with %s or set --ort-lib / %s",
		engines.ErrUnavailable, strings.Join(tried, ", "), FixCommand, LibraryEnv)
}
