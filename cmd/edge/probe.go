package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/masking"
)

// runProbe is `edge probe`.
func runProbe(ctx context.Context, cfg Config, _ *slog.Logger, w io.Writer) error {
	fmt.Fprintf(w, "edge %s (%s/%s, %s)\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "masking vector path: %s\n", masking.Accelerated)
	rt, err := ort.Init(cfg.Engine.ORTLib)
	if err != nil {
		fmt.Fprintf(w, "onnx runtime: unavailable: %v\n", err)
	} else {
		fmt.Fprintf(w, "onnx runtime: %s at %s\n", rt.Version, rt.Library)
		for _, s := range ort.Probe(rt, cfg.Engine.Providers) {
			if s.Err != nil {
				fmt.Fprintf(w, "  provider %-8s unavailable: %s\n", s.Provider, oneLine(s.Err.Error()))
			} else {
				fmt.Fprintf(w, "  provider %-8s available\n", s.Provider)
			}
		}
	}
	fmt.Fprintf(w, "host cpu: %s, %d cores\n", cpuModel(), runtime.NumCPU())
	fmt.Fprintf(w, "host gpu: %s\n", gpuSummary())
	fmt.Fprint(w, probePower(ctx))
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		k = strings.TrimSpace(k)
		if ok && (k == "model name" || k == "Model" || k == "Hardware") {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// gpuSummary says what NVIDIA hardware the host shows without loading any
// driver library: a Jetson's L4T release, or a discrete driver's version.
func gpuSummary() string {
	if raw, err := os.ReadFile("/etc/nv_tegra_release"); err == nil {
		return "NVIDIA Jetson, " + oneLine(firstLine(raw))
	}
	if raw, err := os.ReadFile("/proc/driver/nvidia/version"); err == nil {
		return "NVIDIA driver: " + oneLine(firstLine(raw))
	}
	return "none found (no /etc/nv_tegra_release, no /proc/driver/nvidia)"
}

func firstLine(raw []byte) string {
	s, _, _ := strings.Cut(string(raw), "\n")
	return s
}
