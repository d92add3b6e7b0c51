//go:build cgo

package nvml

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRealNVML reads a real GPU (issue 5 item 8). It skips where NVML has no
// GPU that reads power. EDGE_NVML_LIB points at libnvidia-ml; EDGE_GPU_BUSY
// is a shell command that keeps the GPU busy for the busy interval (it is
// killed at the end). Run it through power/gpucheck.sh.
func TestRealNVML(t *testing.T) {
	s, err := Open(Options{LibraryPath: os.Getenv("EDGE_NVML_LIB")})
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotSupported) {
		t.Skipf("no NVML GPU that reads power here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("device %q: power %v W (%s), energy counter %v J, limit %v W, temps %+v, throttle %+v, clocks %+v, load %v%%, missing %+v",
		r.Device, r.TotalW.V, r.TotalW.Source, r.EnergyJ.V, r.LimitW.V, r.Temps, r.Throttle, r.Clocks, r.GPULoad.V, r.Missing)
	if !r.TotalW.OK() || r.TotalW.V <= 0 {
		t.Errorf("power %+v: want a positive reading", r.TotalW)
	}

	measure := func(label string, d time.Duration) {
		first, err := s.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum, n := 0.0, 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
			if r, err := s.Sample(ctx); err == nil && r.TotalW.OK() {
				sum += r.TotalW.V
				n++
			}
		}
		last, err := s.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secs := last.Time.Sub(first.Time).Seconds()
		if !first.EnergyJ.OK() || !last.EnergyJ.OK() {
			t.Logf("%s: %.2f s, mean sampled power %.1f W; no energy counter", label, secs, sum/float64(max(n, 1)))
			return
		}
		dj := last.EnergyJ.V - first.EnergyJ.V
		t.Logf("%s: %.2f s, energy counter delta %.2f J = %.1f W average; mean of %d power samples %.1f W; load at end %v%%",
			label, secs, dj, dj/secs, n, sum/float64(max(n, 1)), last.GPULoad.V)
		if dj <= 0 {
			t.Errorf("%s: energy counter did not advance (%.3f J)", label, dj)
		}
	}
	measure("idle", 3*time.Second)
	if busy := strings.TrimSpace(os.Getenv("EDGE_GPU_BUSY")); busy != "" {
		cmd := exec.Command("sh", "-c", busy)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start EDGE_GPU_BUSY: %v", err)
		}
		time.Sleep(2 * time.Second) // let it reach the GPU
		measure("busy", 5*time.Second)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
