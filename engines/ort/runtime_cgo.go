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
		if err := shareArena(); err != nil {
			onnx.DestroyEnvironment()
			return nil, fmt.Errorf("%w: %s: shared CPU arena: %v", engines.ErrUnavailable, path, err)
		}
		current = &Runtime{Version: onnx.GetVersion(), Library: path}
		return current, nil
	}
	return nil, fmt.Errorf("%w: ONNX Runtime 1.24 library not found or not loadable; tried %s; install it with %s or set --ort-lib / %s",
		engines.ErrUnavailable, strings.Join(tried, ", "), FixCommand, LibraryEnv)
}

// shareArena registers one CPU arena with the environment; every session
// uses it (session.use_env_allocators, set in configure), so the
// activations of a bundle's sessions — several per sparse stage — share
// memory instead of each growing an arena of its own. Only one session runs
// at a time, so the arena holds about one stage's working set.
func shareArena() error {
	mi, err := onnx.GetMemoryInfo()
	if err != nil {
		return err
	}
	cfg, err := onnx.NewArenaCfg(0, -1, -1, -1)
	if err != nil {
		return err
	}
	defer cfg.Destroy()
	return onnx.CreateAndRegisterAllocator(mi, cfg)
}
