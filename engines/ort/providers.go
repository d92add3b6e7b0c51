package ort

import (
	"log/slog"
	"path/filepath"
	"regexp"

	"github.com/anytime-edge/edge/trt"
)

// notFound matches the dynamic loader's report of a shared library it could
// not find, as ONNX Runtime passes it on when it loads a provider.
var notFound = regexp.MustCompile(`([^\s:]+): cannot open shared object file`)

// missingLibrary reports whether err is ONNX Runtime failing to load a
// provider because a shared library is not installed (rather than installed
// and broken), and names the library the loader could not find.
func missingLibrary(err error) (lib string, ok bool) {
	m := notFound.FindAllStringSubmatch(err.Error(), -1)
	if len(m) == 0 {
		return "", false
	}
	return filepath.Base(m[len(m)-1][1]), true
}

// logUnavailable reports a provider that cannot be set up. One that is
// simply not installed, in an order the user did not choose, is the normal
// state of a CPU-only host: one info line naming the provider and what would
// enable it. Otherwise the library's own reason is a warning.
func logUnavailable(log *slog.Logger, p trt.Provider, err error, explicit bool) {
	if lib, ok := missingLibrary(err); ok && !explicit {
		log.Info("execution provider not installed, trying the next", "provider", p, "missing", lib, "enable", trt.Enable(p))
		return
	}
	log.Warn("execution provider unavailable, trying the next", "provider", p, "reason", err)
}
