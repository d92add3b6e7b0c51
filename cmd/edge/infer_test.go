package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/engines/ort"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/sink"
)

var update = flag.Bool("update", false, "rewrite golden files")

const repo = "../.."

func ortOrSkip(t *testing.T) string {
	t.Helper()
	lib, _ := filepath.Abs(filepath.Join(repo, ".deps", "libonnxruntime.so.1"))
	if _, err := ort.Init(lib); errors.Is(err, engines.ErrUnavailable) {
		t.Skipf("ONNX Runtime not available (run make setup): %v", err)
	}
	return lib
}

// mustAbs is filepath.Abs, failing the test on error.
func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// mustUnmarshal is json.Unmarshal, failing the test on error.
func mustUnmarshal(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}

// runEdge runs the CLI in-process and returns its error.
func runEdge(t *testing.T, args ...string) error {
	t.Helper()
	app := newApp()
	app.Writer = &bytes.Buffer{}
	app.ErrWriter = &bytes.Buffer{}
	return app.Run(append([]string{"edge", "--log-level", "error"}, args...))
}

// TestInferGolden runs the tiny bundle on the reference tensor and compares
// the summary (without timings) with testdata/infer_golden.json.
func TestInferGolden(t *testing.T) {
	lib := ortOrSkip(t)
	out, dump := t.TempDir(), t.TempDir()
	err := runEdge(t, "infer", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
		"--threshold", "0.8", "--out", out, "--dump", dump, "--tensor", filepath.Join(repo, "testdata/bundles/tiny/reference/x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "x.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s sink.Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for i := range s.Exits {
		s.Exits[i].MS, s.Exits[i].MJ = 0, 0 // timings and the energy estimate vary
	}
	s.Input = filepath.Base(s.Input)
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "infer_golden.json")
	if *update {
		testkit.WriteFile(t, golden, append(got, '\n'))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(bytes.TrimSpace(got)) != string(bytes.TrimSpace(want)) {
		t.Errorf("summary differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
	for k := 1; k <= 4; k++ {
		if _, err := os.Stat(filepath.Join(out, "x_exit"+string(rune('0'+k))+".png")); err != nil {
			t.Errorf("exit %d label map: %v", k, err)
		}
	}
	a, err := npy.Read(filepath.Join(dump, "exit3_mask.npy"))
	if err != nil || len(a.Uint8) != 16*32 {
		t.Fatalf("exit3 mask dump: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dump, "exit4_mask.npy")); err == nil {
		t.Errorf("a mask was dumped after the last exit")
	}
}

// TestInferBadInputs checks that broken frames fail alone, with the reason,
// and the good frames are still written.
func TestInferBadInputs(t *testing.T) {
	lib := ortOrSkip(t)
	out := t.TempDir()
	images := filepath.Join(repo, "testdata/images")
	err := runEdge(t, "infer", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"), "--out", out,
		filepath.Join(images, "truncated.png"), filepath.Join(images, "street.png"), filepath.Join(images, "not-an-image.png"),
		filepath.Join(images, "grey.png"), filepath.Join(images, "deep16.png"), filepath.Join(images, "missing.png"))
	if err == nil {
		t.Fatal("infer succeeded with broken inputs")
	}
	for _, want := range []string{"3 of 6 inputs failed", "truncated.png", "corrupt png", "not-an-image.png", "not a PNG or JPEG", "missing.png", "no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	for _, name := range []string{"street", "grey", "deep16"} {
		if _, err := os.Stat(filepath.Join(out, name+"_overlay.png")); err != nil {
			t.Errorf("good frame %s not written: %v", name, err)
		}
	}
}

func TestInferRefusesBadSettings(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"infer", "--providers", "tensorrt,gpu", "x.png"}, `unknown provider "gpu"`},
		{[]string{"infer", "--bundle", "/nonexistent", "--providers", "cpu", "x.png"}, "bundle.json"},
		{[]string{"infer", "--providers", "cpu"}, "at least one IMAGE"},
		{[]string{"infer", "--max-exit", "-1", "x.png"}, "--max-exit -1"},
		{[]string{"infer", "--energy-budget", "-2", "x.png"}, "--energy-budget -2"},
	}
	for _, tt := range tests {
		err := runEdge(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestConfigFilePrecedence(t *testing.T) {
	lib := ortOrSkip(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.json")
	testkit.WriteFile(t, cfg, []byte(`{"providers": "cpu", "threshold": 0.1, "bundle": "/nonexistent", "out": "`+filepath.Join(dir, "from-file")+`"}`))
	t.Setenv("EDGE_BUNDLE", filepath.Join(repo, "testdata/bundles/tiny"))
	// --out on the command line beats the file, EDGE_BUNDLE beats the
	// file's bundle; providers and threshold come from the file.
	err := runEdge(t, "--config", cfg, "infer", "--ort-lib", lib, "--out", filepath.Join(dir, "from-flag"),
		"--tensor", filepath.Join(repo, "testdata/bundles/tiny/reference/x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "from-flag", "x.json"))
	if err != nil {
		t.Fatalf("flag did not win over the file: %v", err)
	}
	var s sink.Summary
	mustUnmarshal(t, raw, &s)
	if s.Threshold != 0.1 || s.Bundle.Name != "tiny-adpc-random" {
		t.Errorf("got threshold %v, bundle %q; want 0.1 from the file and the bundle from EDGE_BUNDLE", s.Threshold, s.Bundle.Name)
	}
	testkit.WriteFile(t, cfg, []byte(`{"provders": "cpu"}`))
	if err := runEdge(t, "--config", cfg, "infer", "x.png"); err == nil || !strings.Contains(err.Error(), `"provders" is not a flag`) {
		t.Errorf("a typo in the config file passed: %v", err)
	}
}

// TestInferHaltsOnLimits runs infer with each power limit set so that it
// must bite, reading the Jetson backend from the Orin NX fixture tree (hot
// at 44 °C against a hard limit of 40 °C).
func TestInferHaltsOnLimits(t *testing.T) {
	lib := ortOrSkip(t)
	tests := []struct {
		name   string
		args   []string
		reason string
		exits  int
	}{
		{"max exit", []string{"--max-exit", "2"}, "max-exit", 2},
		{"energy budget", []string{"--energy-budget", "0.0001"}, "energy-budget", 1},
		{"thermal hard limit", []string{"--power-backend", "jetson", "--sysfs", filepath.Join(repo, "power/jetson/testdata/orin-nx"), "--thermal-hard", "40"}, "thermal", 1},
		// The estimate backend has no temperature: a thermal limit fails safe.
		{"thermal limit without a temperature", []string{"--power-backend", "estimate", "--thermal-soft", "80"}, "thermal", 1},
		{"deadline", []string{"--deadline", "1ns"}, "deadline", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"infer", "--ort-lib", lib, "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"),
				"--threshold", "2", "--out", out}, tt.args...)
			if err := runEdge(t, append(args, filepath.Join(repo, "testdata/images/street.png"))...); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(out, "street.json"))
			if err != nil {
				t.Fatal(err)
			}
			var s sink.Summary
			mustUnmarshal(t, raw, &s)
			if s.Halt.Reason != anytime.Reason(tt.reason) || s.Halt.Exit != tt.exits {
				t.Errorf("halted at exit %d (%s), want exit %d (%s)", s.Halt.Exit, s.Halt.Reason, tt.exits, tt.reason)
			}
		})
	}
}

// TestInferRefusesInputsWithTheSameName: a/x.png and b/x.png would write
// the same x_*.png and x.json under --out, so infer refuses them up front,
// naming both, and writes nothing.
func TestInferRefusesInputsWithTheSameName(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(repo, "testdata/images/street.png"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a", "x.png"), filepath.Join(dir, "b", "x.png")
	for _, p := range []string{a, b} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	err = runEdge(t, "infer", "--providers", "cpu", "--bundle", filepath.Join(repo, "testdata/bundles/tiny"), "--out", out, a, b)
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("infer a/x.png b/x.png: got %v, want an error naming both", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--out was created (%v) although nothing ran", err)
	}
}
