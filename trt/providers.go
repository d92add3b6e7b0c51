package trt

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Provider is an ONNX Runtime execution provider.
type Provider string

// Providers the runtime knows.
const (
	TensorRT Provider = "tensorrt"
	CUDA     Provider = "cuda"
	CPU      Provider = "cpu"
)

// DefaultOrder is the provider order used when none is given.
var DefaultOrder = []Provider{TensorRT, CUDA, CPU}

// Enable says what a host needs before provider p can be set up, for the
// line that reports it missing.
func Enable(p Provider) string {
	switch p {
	case TensorRT:
		return "an ONNX Runtime built with the TensorRT provider, and TensorRT's libraries on the loader path (on Jetson: JetPack and the build in deploy/jetson)"
	case CUDA:
		return "an ONNX Runtime built with the CUDA provider, and the CUDA and cuDNN libraries on the loader path (on Jetson: JetPack and the build in deploy/jetson)"
	}
	return "nothing: it is part of every ONNX Runtime build"
}

// ParseProviders parses a comma-separated provider list such as
// "tensorrt,cuda,cpu". Order matters; duplicates and unknown names are
// errors.
func ParseProviders(s string) ([]Provider, error) {
	var out []Provider
	for _, f := range strings.Split(s, ",") {
		p := Provider(strings.ToLower(strings.TrimSpace(f)))
		switch p {
		case TensorRT, CUDA, CPU:
		case "":
			return nil, fmt.Errorf("providers %q: empty name in the list", s)
		default:
			return nil, fmt.Errorf("providers %q: unknown provider %q (want tensorrt, cuda or cpu)", s, p)
		}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("providers %q: %q is listed twice", s, p)
		}
		out = append(out, p)
	}
	return out, nil
}

// Attempt records one provider tried for a stage and why it was not used.
type Attempt struct {
	Provider Provider
	Err      error
}

// ErrNoProvider is returned by Choose when no listed provider could be set up.
var ErrNoProvider = errors.New("no execution provider available")

// Choose tries the providers in order with setup and returns the first that
// succeeds, with the attempts that failed before it (their reasons are the
// library's own). CPU always sits at the end of a list only if the user put
// it there: a list of GPU providers that all fail is an error, never a
// silent fall-back to CPU.
func Choose(order []Provider, setup func(Provider) error) (Provider, []Attempt, error) {
	var failed []Attempt
	for _, p := range order {
		err := setup(p)
		if err == nil {
			return p, failed, nil
		}
		failed = append(failed, Attempt{Provider: p, Err: err})
	}
	msgs := make([]string, len(failed))
	for i, a := range failed {
		msgs[i] = fmt.Sprintf("%s: %v", a.Provider, a.Err)
	}
	hint := ""
	if !slices.Contains(order, CPU) {
		hint = " (add cpu to --providers to allow running on the CPU)"
	}
	return "", failed, fmt.Errorf("%w: %s%s", ErrNoProvider, strings.Join(msgs, "; "), hint)
}
