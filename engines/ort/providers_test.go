package ort

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/trt"
)

func TestMissingLibrary(t *testing.T) {
	for _, tt := range []struct {
		name, err, lib string
	}{
		// The npm CPU build of 1.24 asked for the TensorRT or CUDA provider.
		{"cpu build", "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1957 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library /opt/edge/.deps/libonnxruntime_providers_shared.so with error: /opt/edge/.deps/libonnxruntime_providers_shared.so: cannot open shared object file: No such file or directory",
			"libonnxruntime_providers_shared.so"},
		// A GPU build on a host without TensorRT: the provider loads, its
		// dependency does not; the dependency is what to install.
		{"gpu build without tensorrt", "[ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_tensorrt.so with error: libnvinfer.so.10: cannot open shared object file: No such file or directory",
			"libnvinfer.so.10"},
		// Installed but broken is not "missing".
		{"wrong version", "[ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: /usr/lib/libonnxruntime_providers_cuda.so: undefined symbol: cudnnCreate", ""},
		{"cuda error", "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device is detected", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lib, ok := missingLibrary(errors.New(tt.err))
			if lib != tt.lib || ok != (tt.lib != "") {
				t.Errorf("got %q, %v; want %q", lib, ok, tt.lib)
			}
		})
	}
}

// logRecord is one JSON slog line.
type logRecord struct {
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Provider string `json:"provider"`
	Missing  string `json:"missing"`
	Enable   string `json:"enable"`
	Reason   string `json:"reason"`
}

// openLogged opens the tiny bundle with opts and returns what it logged.
func openLogged(t *testing.T, rt *Runtime, opts trt.Options) []logRecord {
	t.Helper()
	b, err := bundle.Load(tinyBundle)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	e, err := Open(rt, b, Config{Providers: opts, Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// gpuAbsentOrSkip skips the test where TensorRT or CUDA can be set up, and
// returns why each GPU provider cannot.
func gpuAbsentOrSkip(t *testing.T, rt *Runtime, opts trt.Options) map[trt.Provider]error {
	t.Helper()
	why := map[trt.Provider]error{}
	for _, s := range Probe(rt, opts) {
		if s.Provider == trt.CPU {
			continue
		}
		if s.Err == nil {
			t.Skipf("%s is available on this host", s.Provider)
		}
		why[s.Provider] = s.Err
	}
	return why
}

// TestMissingProvidersAreQuietByDefault: on a host without the GPU
// providers, the default order logs one info line per provider, naming it
// and what would enable it, and no warning; a user who listed them is
// warned with the library's reason.
func TestMissingProvidersAreQuietByDefault(t *testing.T) {
	rt := runtimeOrSkip(t)
	opts := cpuOptions()
	opts.Order = trt.DefaultOrder
	for p, err := range gpuAbsentOrSkip(t, rt, opts) {
		if _, missing := missingLibrary(err); !missing {
			t.Skipf("%s is installed but cannot be set up: %v", p, err)
		}
	}

	notInstalled := map[string]int{}
	for _, r := range openLogged(t, rt, opts) {
		switch {
		case r.Level == "WARN" || r.Level == "ERROR":
			t.Errorf("default order logged %s %q (%s: %s)", r.Level, r.Msg, r.Provider, r.Reason)
		case strings.HasPrefix(r.Msg, "execution provider not installed"):
			notInstalled[r.Provider]++
			if r.Enable != trt.Enable(trt.Provider(r.Provider)) || r.Missing == "" || strings.Contains(r.Msg+r.Missing, "ONNXRuntimeError") {
				t.Errorf("info line for %s: %+v", r.Provider, r)
			}
		}
	}
	if len(notInstalled) != 2 || notInstalled["tensorrt"] != 1 || notInstalled["cuda"] != 1 {
		t.Errorf("not-installed lines per provider: %v, want one each for tensorrt and cuda", notInstalled)
	}

	opts.Explicit = true
	warned := map[string]int{}
	for _, r := range openLogged(t, rt, opts) {
		if r.Level == "WARN" && r.Reason != "" {
			warned[r.Provider]++
		}
	}
	if warned["tensorrt"] != 1 || warned["cuda"] != 1 {
		t.Errorf("explicit order: warnings per provider %v, want one each for tensorrt and cuda", warned)
	}
}
