package ort

import (
	"os"
	"path/filepath"
)

// LibraryEnv is the environment variable naming the ONNX Runtime library.
const LibraryEnv = "EDGE_ORT_LIB"

// systemLibrary is the name handed to the dynamic loader's own search.
const systemLibrary = "libonnxruntime.so.1"

// FixCommand is what a user runs to install the CPU library.
const FixCommand = "make setup (or: scripts/setup-ort.sh)"

// Candidates lists where the library is looked for, in order: the explicit
// path (flag, then EDGE_ORT_LIB), the project's .deps/ next to the working
// directory and next to the executable, then the system loader path.
func Candidates(explicit string) []string {
	var c []string
	if explicit != "" {
		c = append(c, explicit)
	}
	if env := os.Getenv(LibraryEnv); env != "" && env != explicit {
		c = append(c, env)
	}
	c = append(c, filepath.Join(".deps", systemLibrary))
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "..", ".deps", systemLibrary)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		c = append(c, p)
	}
	return append(c, systemLibrary)
}
