package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/nvml"
	"github.com/anytime-edge/edge/power/powertest"
)

func nvmlSays(err error) func(nvml.Options) (power.Sampler, error) {
	return func(nvml.Options) (power.Sampler, error) {
		if err != nil {
			return nil, err
		}
		return &powertest.Sampler{}, nil
	}
}

func TestOpen(t *testing.T) {
	nano := filepath.Join("..", "jetson", "testdata", "orin-nano")
	empty := t.TempDir()
	notSupported := fmt.Errorf("nvml device 0 (Orin (nvgpu)): %w", nvml.ErrNotSupported)
	tests := []struct {
		name    string
		kind    Kind
		root    string
		nvml    error
		want    Kind
		wantErr bool
		why     []string // substrings, in order
	}{
		{"discrete GPU", Auto, empty, nil, NVML, false, []string{"nvml: device 0"}},
		{"jetson: nvml inits but reads nothing", Auto, nano, notSupported, Jetson, false,
			[]string{"nvml: passed over", "reads no power", "jetson:", "found VDD_IN, VDD_CPU_GPU_CV, VDD_SOC"}},
		{"no sensors", Auto, empty, nvml.ErrUnavailable, Estimate, false,
			[]string{"nvml: passed over", "jetson: passed over", "no readable INA3221 rail", "estimate: no sensor"}},
		{"forced estimate on a GPU host", Estimate, empty, nil, Estimate, false, []string{"estimate"}},
		{"forced jetson where there is none", Jetson, empty, nil, Jetson, true, nil},
		{"forced nvml without a driver", NVML, empty, nvml.ErrUnavailable, NVML, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c, err := Open(context.Background(), Options{Kind: tt.kind, SysfsRoot: tt.root, openNVML: nvmlSays(tt.nvml)})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer s.Close()
			if c.Kind != tt.want {
				t.Errorf("chose %s, want %s (%s)", c.Kind, tt.want, c)
			}
			text := c.String()
			at := 0
			for _, w := range tt.why {
				i := strings.Index(text[at:], w)
				if i < 0 {
					t.Fatalf("choice %q lacks %q after offset %d", text, w, at)
				}
				at += i
			}
			if _, err := s.Sample(context.Background()); err != nil {
				t.Errorf("Sample from the chosen backend: %v", err)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds {
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	if _, err := ParseKind("tegra"); err == nil || !strings.Contains(err.Error(), "auto, nvml, jetson, estimate") {
		t.Errorf("ParseKind(tegra) = %v, want an error listing the kinds", err)
	}
}

func TestOpenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Open(ctx, Options{openNVML: nvmlSays(nil)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
}
