package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/trt"
)

func TestEnginesBuildWithoutTensorRTFails(t *testing.T) {
	lib := ortOrSkip(t)
	rt, err := ort.Init(lib)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ort.Probe(rt, trt.DefaultOptions()) {
		if s.Provider == trt.TensorRT && s.Err == nil {
			t.Skip("TensorRT is available on this host")
		}
	}
	err = runEdge(t, "engines", "build", "--ort-lib", lib, "--bundle", filepath.Join(repo, "testdata/bundles/tiny"), "--trt-cache", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "TensorRT is not available on this host") {
		t.Fatalf("got %v, want a clear TensorRT-unavailable error", err)
	}
	if err := runEdge(t, "engines", "build", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"), "--trt-cache", ""); err == nil || !strings.Contains(err.Error(), "--trt-cache DIR is required") {
		t.Errorf("no cache dir: got %v", err)
	}
}

func TestEnginesPruneDeletesOnlyStaleEngines(t *testing.T) {
	dir := filepath.Join(repo, "testdata/bundles/tiny")
	b, err := bundle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	current := trt.StageKey{BundleSHA256: b.SHA256, Stage: b.Stages[1].Name}.CachePrefix() + "_99_0_0_fp16_sm87.engine"
	stale := trt.StageKey{BundleSHA256: strings.Repeat("0", 64), Stage: b.Stages[1].Name}.CachePrefix() + "_99_0_0_fp16_sm87.engine"
	timing := "TensorrtExecutionProvider_cache_sm87.timing"
	for _, f := range []string{"engines/" + current, "engines/" + stale, "timing/" + timing} {
		testkit.WriteFile(t, filepath.Join(cache, f), []byte("x"))
	}
	if err := runEdge(t, "engines", "prune", "--bundle", dir, "--trt-cache", cache, "--dry-run"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cache, "engines", stale)); err != nil {
		t.Fatal("--dry-run deleted a file")
	}
	if err := runEdge(t, "engines", "prune", "--bundle", dir, "--trt-cache", cache); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{"engines/" + current: true, "engines/" + stale: false, "timing/" + timing: true} {
		if _, err := os.Stat(filepath.Join(cache, f)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", f, err == nil, want)
		}
	}
}

// TestBenchActive times the tiny bundle against itself at a synthetic
// operating point: the JSON says the masks are synthetic, the stages froze
// what --active asked, and the counted ratio of a bundle to itself is 1.
func TestBenchActive(t *testing.T) {
	lib := ortOrSkip(t)
	var out strings.Builder
	app := newApp()
	app.Writer = &out
	tiny := filepath.Join(repo, "testdata/bundles/tiny")
	err := app.Run([]string{"edge", "--log-level", "error", "bench", "--ort-lib", lib, "--providers", "cpu", "--threads", "1",
		"--bundle", tiny, "--baseline", tiny, "--frames", "1", "--active", "0.75,0.5,0.25", "--json", "--images", filepath.Join(repo, "testdata/images/street.png")})
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if !slices.Equal(rep.SyntheticMasks, []float64{0.75, 0.5, 0.25}) {
		t.Errorf("synthetic_masks %v", rep.SyntheticMasks)
	}
	for k, want := range []float64{0, 0.25, 0.5, 0.75} {
		if math.Abs(rep.Frozen[k]-want) > 1.0/512 {
			t.Errorf("stage %d froze %v, want %v", k+1, rep.Frozen[k], want)
		}
	}
	if rep.CountedRatio != 1 || rep.Realized != nil || rep.FrameRatio <= 0 || rep.GMACs <= 0 {
		t.Errorf("counted ratio %v, realized %v, frame ratio %v, GMACs %v; want 1, absent, > 0, > 0", rep.CountedRatio, rep.Realized, rep.FrameRatio, rep.GMACs)
	}
	if rep.Ran[1]["masked"] != 1 {
		t.Errorf("stage 2 ran %v, want masked once", rep.Ran[1])
	}
}
