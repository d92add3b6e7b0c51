package trt

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseProviders(t *testing.T) {
	tests := []struct {
		in      string
		want    []Provider
		wantErr string
	}{
		{"tensorrt,cuda,cpu", []Provider{TensorRT, CUDA, CPU}, ""},
		{" CPU ", []Provider{CPU}, ""},
		{"cuda,tensorrt", []Provider{CUDA, TensorRT}, ""},
		{"tensorrt,,cpu", nil, "empty name"},
		{"openvino", nil, `unknown provider "openvino"`},
		{"cpu,cpu", nil, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseProviders(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// fakeHost says which providers can be set up on a pretend machine.
func fakeHost(available ...Provider) func(Provider) error {
	return func(p Provider) error {
		if slices.Contains(available, p) {
			return nil
		}
		return errors.New(string(p) + " execution provider is not enabled in this build")
	}
}

func TestChooseFallsBackInOrder(t *testing.T) {
	tests := []struct {
		name       string
		order      []Provider
		available  []Provider
		want       Provider
		wantFailed []Provider
		wantErr    bool
	}{
		{"jetson takes tensorrt", DefaultOrder, []Provider{TensorRT, CUDA, CPU}, TensorRT, nil, false},
		{"no tensorrt falls to cuda", DefaultOrder, []Provider{CUDA, CPU}, CUDA, []Provider{TensorRT}, false},
		{"cpu-only build falls to cpu", DefaultOrder, []Provider{CPU}, CPU, []Provider{TensorRT, CUDA}, false},
		{"gpu-only list on a cpu host is an error", []Provider{TensorRT}, []Provider{CPU}, "", []Provider{TensorRT}, true},
		{"gpu list never falls to cpu", []Provider{TensorRT, CUDA}, []Provider{CPU}, "", []Provider{TensorRT, CUDA}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, failed, err := Choose(tt.order, fakeHost(tt.available...))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got provider %q, want %q", got, tt.want)
			}
			var names []Provider
			for _, a := range failed {
				names = append(names, a.Provider)
				if a.Err == nil || !strings.Contains(a.Err.Error(), "not enabled") {
					t.Errorf("attempt %s lost the library's reason: %v", a.Provider, a.Err)
				}
			}
			if !slices.Equal(names, tt.wantFailed) {
				t.Errorf("got failed attempts %v, want %v", names, tt.wantFailed)
			}
			if err != nil {
				if !errors.Is(err, ErrNoProvider) || !strings.Contains(err.Error(), "not enabled in this build") || !strings.Contains(err.Error(), "add cpu") {
					t.Errorf("error does not explain itself: %v", err)
				}
			}
		})
	}
}

func TestTensorRTOptions(t *testing.T) {
	o := DefaultOptions()
	o.CacheDir = "/var/cache/edge"
	o.DLACore = 1
	o.MaxWorkspaceBytes = 1 << 30
	k := StageKey{BundleSHA256: "0123456789abcdef0123", Stage: "stage 2/b"}
	p := &Profile{
		Min: []Shape{{"idx4", []int64{1}}, {"x", []int64{1, 8, 16, 16}}},
		Opt: []Shape{{"idx4", []int64{64}}, {"x", []int64{64, 8, 16, 16}}},
		Max: []Shape{{"idx4", []int64{256}}, {"x", []int64{256, 8, 16, 16}}},
	}
	m := o.TensorRTOptions(k, p)
	want := map[string]string{
		"device_id":               "0",
		"trt_fp16_enable":         "1",
		"trt_max_workspace_size":  "1073741824",
		"trt_engine_cache_enable": "1",
		"trt_engine_cache_path":   "/var/cache/edge/engines",
		"trt_engine_cache_prefix": "edge1_stage-2-b_0123456789ab",
		"trt_timing_cache_enable": "1",
		"trt_timing_cache_path":   "/var/cache/edge/timing",
		"trt_dla_enable":          "1",
		"trt_dla_core":            "1",
		"trt_profile_min_shapes":  "idx4:1,x:1x8x16x16",
		"trt_profile_opt_shapes":  "idx4:64,x:64x8x16x16",
		"trt_profile_max_shapes":  "idx4:256,x:256x8x16x16",
	}
	for key, v := range want {
		if m[key] != v {
			t.Errorf("%s: got %q, want %q", key, m[key], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("got %d options, want %d: %v", len(m), len(want), m)
	}
	other := k
	other.BundleSHA256 = "ffff56789abcdef0123"
	if other.CachePrefix() == k.CachePrefix() {
		t.Errorf("a retrained bundle reuses cache prefix %q", k.CachePrefix())
	}
}

func TestDefaultsLeaveCachesAndDLAOff(t *testing.T) {
	m := DefaultOptions().TensorRTOptions(StageKey{Stage: "s"}, nil)
	for _, key := range []string{"trt_engine_cache_enable", "trt_dla_enable", "trt_profile_min_shapes"} {
		if _, ok := m[key]; ok {
			t.Errorf("default options set %s", key)
		}
	}
	if got := DefaultOptions().CUDAOptions()["cudnn_conv_algo_search"]; got != "HEURISTIC" {
		t.Errorf("cudnn_conv_algo_search = %q, want HEURISTIC", got)
	}
}

func TestCacheListingAndStale(t *testing.T) {
	dir := t.TempDir()
	cur := StageKey{BundleSHA256: "aaaaaaaaaaaa0000", Stage: "stage1"}
	old := StageKey{BundleSHA256: "bbbbbbbbbbbb0000", Stage: "stage1"}
	files := []string{
		"engines/" + cur.CachePrefix() + "_1234567_0_0_fp16_sm87.engine",
		"engines/" + cur.CachePrefix() + "_1234567_0_0_fp16_sm87.profile",
		"engines/" + old.CachePrefix() + "_7654321_0_0_fp16_sm87.engine",
		"engines/TensorrtExecutionProvider_TRTKernel_graph_x.engine",
		"timing/TensorrtExecutionProvider_cache_sm87.timing",
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	entries, err := ListCache(dir)
	if err != nil || len(entries) != 5 {
		t.Fatalf("got %d entries, %v", len(entries), err)
	}
	kinds := map[string]int{}
	for _, e := range entries {
		kinds[e.Kind]++
	}
	if kinds["engine"] != 3 || kinds["profile"] != 1 || kinds["timing"] != 1 {
		t.Errorf("kinds %v", kinds)
	}
	stale := Stale(entries, []StageKey{cur})
	if len(stale) != 1 || !strings.Contains(stale[0].Path, old.CachePrefix()) {
		t.Errorf("stale: %+v", stale)
	}
	if len(Stale(entries, nil)) != 3 {
		t.Errorf("with no bundle every engine of ours is stale, others never")
	}
	if entries, err := ListCache(filepath.Join(dir, "none")); err != nil || len(entries) != 0 {
		t.Errorf("missing cache dir: %v, %v", entries, err)
	}
}
