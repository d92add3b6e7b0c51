package bundle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sparseManifest is the tiny manifest with stage 2 (index 1) turned into a
// sparse stage: tables at strides 4 and 8, a band at both.
func sparseManifest(t *testing.T) map[string]any {
	t.Helper()
	m := tinyManifest(t)
	s := stage(m, 1)
	s["mode"] = ModeSparse
	s["file"] = "stage2.sparse.onnx"
	in := s["inputs"].(map[string]any)
	for k, v := range in {
		if v == SourceMask {
			delete(in, k)
		}
	}
	in["idx4"], in["band4"], in["idx8"], in["band8"], in["idx16"], in["band16"] = "index:4", "band:4", "index:8", "band:8", "index:16", "band:16"
	s["sparse"] = map[string]any{
		"bands":  map[string]any{"4": 1, "8": 3, "16": 0},
		"masked": map[string]any{"file": "stage2.onnx", "mask": "mask"},
		"dense":  map[string]any{"file": "stage2.dense.onnx"},
		"native": map[string]any{"file": "stage2.plan.json"},
	}
	return m
}

func TestParseSparseStage(t *testing.T) {
	raw, _ := json.Marshal(sparseManifest(t))
	m, err := Parse("x/bundle.json", raw)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Stages[1].Tables()
	want := []Table{
		{Input: "band16", Kind: TableBand, Stride: 16, Radius: 0},
		{Input: "band4", Kind: TableBand, Stride: 4, Radius: 1},
		{Input: "band8", Kind: TableBand, Stride: 8, Radius: 3},
		{Input: "idx16", Kind: TableIndex, Stride: 16},
		{Input: "idx4", Kind: TableIndex, Stride: 4},
		{Input: "idx8", Kind: TableIndex, Stride: 8},
	}
	if !slices.Equal(got, want) {
		t.Errorf("tables:\n got %+v\nwant %+v", got, want)
	}
	if m.Stages[2].Tables() != nil {
		t.Errorf("a masked stage lists tables %v", m.Stages[2].Tables())
	}
}

func TestParseRejectsBrokenSparseStages(t *testing.T) {
	sp := func(m map[string]any) map[string]any { return stage(m, 1)["sparse"].(map[string]any) }
	in := func(m map[string]any) map[string]any { return stage(m, 1)["inputs"].(map[string]any) }
	tests := []struct {
		name      string
		edit      func(m map[string]any)
		wantField string
		wantMsg   string
	}{
		{"no sparse object", func(m map[string]any) { delete(stage(m, 1), "sparse") }, "stages[1].sparse", "needs bands"},
		{"sparse object on a masked stage", func(m map[string]any) { stage(m, 2)["sparse"] = sp(m) }, "stages[2].sparse", "only a sparse stage"},
		{"table on a masked stage", func(m map[string]any) { stage(m, 2)["inputs"].(map[string]any)["i"] = "index:4" }, "stages[2].inputs.i", "only sparse stages"},
		{"stride not a number", func(m map[string]any) { in(m)["idx4"] = "index:four" }, "stages[1].inputs.idx4", "positive stride"},
		{"stride zero", func(m map[string]any) { in(m)["idx4"] = "index:0" }, "stages[1].inputs.idx4", "positive stride"},
		{"stride with sign", func(m map[string]any) { in(m)["idx4"] = "index:+4" }, "stages[1].inputs.idx4", "positive stride"},
		{"stride not a power of two", func(m map[string]any) { in(m)["idx16"] = "index:12" }, "stages[1].inputs.idx16", "power of two"},
		{"stride below the output stride", func(m map[string]any) { in(m)["idx16"] = "index:2" }, "stages[1].inputs.idx16", "multiple of output_stride 4"},
		{"stride beyond the input", func(m map[string]any) { in(m)["idx16"] = "index:128" }, "stages[1].inputs.idx16", "does not divide the 64x128"},
		{"two tables of one stride", func(m map[string]any) { in(m)["idx16"] = "index:8" }, "stages[1].inputs.idx8", "a second"},
		{"no index table", func(m map[string]any) {
			for _, k := range []string{"idx4", "idx8", "idx16", "band4", "band8", "band16"} {
				delete(in(m), k)
			}
			sp(m)["bands"] = map[string]any{}
		}, "stages[1].inputs", "no \"index:S\""},
		{"band without index", func(m map[string]any) { delete(in(m), "idx16") }, "stages[1].inputs", "\"band:16\" has no \"index:16\""},
		{"index without band", func(m map[string]any) {
			delete(in(m), "band16")
			delete(sp(m)["bands"].(map[string]any), "16")
		}, "stages[1].inputs", "\"index:16\" has no \"band:16\""},
		{"radius negative", func(m map[string]any) { sp(m)["bands"].(map[string]any)["4"] = -1 }, "stages[1].sparse.bands.4", "want 0..3"},
		{"radius too large", func(m map[string]any) { sp(m)["bands"].(map[string]any)["8"] = 4 }, "stages[1].sparse.bands.8", "want 0..3"},
		{"radius without band", func(m map[string]any) { sp(m)["bands"].(map[string]any)["32"] = 1 }, "stages[1].sparse.bands.32", "no input is fed from \"band:32\""},
		{"band without radius", func(m map[string]any) { delete(sp(m)["bands"].(map[string]any), "8") }, "stages[1].sparse.bands", "no radius for \"band:8\""},
		{"bad band key", func(m map[string]any) { sp(m)["bands"].(map[string]any)["x"] = 1 }, "stages[1].sparse.bands.x", "not a positive stride"},
		{"masked file missing", func(m map[string]any) { sp(m)["masked"].(map[string]any)["file"] = "" }, "stages[1].sparse.masked.file", "missing"},
		{"masked file outside", func(m map[string]any) { sp(m)["masked"].(map[string]any)["file"] = "../stage2.onnx" }, "stages[1].sparse.masked.file", "relative path"},
		{"dense file reused", func(m map[string]any) { sp(m)["dense"].(map[string]any)["file"] = "stage3.onnx" }, "stages[", "already used"},
		{"native plan outside", func(m map[string]any) { sp(m)["native"].(map[string]any)["file"] = "/tmp/plan.json" }, "stages[1].sparse.native.file", "relative path"},
		{"native plan reuses a graph", func(m map[string]any) { sp(m)["native"].(map[string]any)["file"] = "stage2.onnx" }, "stages[", "already used"},
		{"mask input unnamed", func(m map[string]any) { sp(m)["masked"].(map[string]any)["mask"] = "" }, "stages[1].sparse.masked.mask", "missing"},
		{"mask input clashes", func(m map[string]any) { sp(m)["masked"].(map[string]any)["mask"] = "idx4" }, "stages[1].sparse.masked.mask", "also an input"},
		{"mask on the sparse graph", func(m map[string]any) { in(m)["mask"] = "mask" }, "stages[1].inputs.mask", "only masked stages"},
		{"unknown sparse field", func(m map[string]any) { sp(m)["buckets"] = []any{8} }, "", "unknown field \"buckets\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sparseManifest(t)
			tt.edit(m)
			raw, _ := json.Marshal(m)
			_, err := Parse("x/bundle.json", raw)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if !strings.HasPrefix(fe.Field, tt.wantField) || !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("got %q, want field %q and a message containing %q", err, tt.wantField, tt.wantMsg)
			}
		})
	}
}

// writeSparseBundle writes the sparse manifest and empty graph files (all
// but skip) into a temporary directory.
func writeSparseBundle(t *testing.T, skip string) string {
	t.Helper()
	dir := t.TempDir()
	raw, _ := json.Marshal(sparseManifest(t))
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"stage1.onnx", "stage2.sparse.onnx", "stage2.onnx", "stage2.dense.onnx", "stage2.plan.json", "stage3.onnx", "stage4.onnx"} {
		if f != skip {
			os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
		}
	}
	return dir
}

func TestLoadSparseBundle(t *testing.T) {
	b, err := Load(writeSparseBundle(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(b.MaskedPath(1)); got != "stage2.onnx" {
		t.Errorf("masked path %q", got)
	}
	if got := filepath.Base(b.PlainDensePath(1)); got != "stage2.dense.onnx" {
		t.Errorf("dense path %q", got)
	}
	if got := filepath.Base(b.NativePlanPath(1)); got != "stage2.plan.json" {
		t.Errorf("native plan path %q", got)
	}
	if got := b.NativePlanPath(2); got != "" {
		t.Errorf("a masked stage has a native plan %q", got)
	}
	// The shared weights are part of the digest.
	weights := filepath.Join(b.Dir, "stage2.weights")
	digests := []string{b.SHA256}
	for _, content := range []string{"w1", "w2"} {
		os.WriteFile(weights, []byte(content), 0o644)
		b, err := Load(b.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(digests, b.SHA256) {
			t.Errorf("weights %q: digest %s already seen", content, b.SHA256)
		}
		digests = append(digests, b.SHA256)
	}
	for _, f := range []struct{ skip, field string }{
		{"stage2.onnx", "stages[1].sparse.masked.file"},
		{"stage2.dense.onnx", "stages[1].sparse.dense.file"},
		{"stage2.plan.json", "stages[1].sparse.native.file"},
	} {
		_, err := Load(writeSparseBundle(t, f.skip))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), f.field) || !strings.Contains(err.Error(), f.skip) {
			t.Errorf("without %s: got %v, want an error naming %s", f.skip, err, f.field)
		}
	}
}

func TestCheckSparseGraphs(t *testing.T) {
	b, err := Load(writeSparseBundle(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	h, w := b.OutputSize()
	state := TensorInfo{Name: "x0", Type: "float32", Shape: []int64{1, 8, int64(h), int64(w)}}
	outs := []TensorInfo{
		{Name: b.Stages[1].Logits, Type: "float32", Shape: []int64{1, int64(b.Channels()), int64(h), int64(w)}},
	}
	for _, st := range b.Stages[1].State {
		outs = append(outs, TensorInfo{Name: st, Type: "float32", Shape: []int64{1, 16, int64(h), int64(w)}})
	}
	graphs := func() (sparse, masked, dense GraphInfo) {
		sparse.Inputs = []TensorInfo{state}
		for _, tb := range b.Stages[1].Tables() {
			sparse.Inputs = append(sparse.Inputs, TensorInfo{Name: tb.Input, Type: "int64", Shape: []int64{-1}})
		}
		masked.Inputs = []TensorInfo{state, {Name: "mask", Type: "float32", Shape: []int64{1, 1, int64(h), int64(w)}}}
		dense.Inputs = []TensorInfo{state}
		sparse.Outputs, masked.Outputs, dense.Outputs = slices.Clone(outs), slices.Clone(outs), slices.Clone(outs)
		return
	}
	if s, m, d := graphs(); b.CheckSparseGraphs(1, s, m, d) != nil {
		t.Fatalf("consistent graphs refused: %v", b.CheckSparseGraphs(1, s, m, d))
	}
	tests := []struct {
		name     string
		breakIt  func(s, m, d *GraphInfo)
		file     string
		wantPart string
	}{
		{"float table", func(s, m, d *GraphInfo) { s.Inputs[1].Type = "float32" }, "stage2.sparse.onnx", "want int64 [N] with N dynamic"},
		{"static table", func(s, m, d *GraphInfo) { s.Inputs[2].Shape = []int64{64} }, "stage2.sparse.onnx", "want int64 [N] with N dynamic"},
		{"2-D table", func(s, m, d *GraphInfo) { s.Inputs[2].Shape = []int64{-1, 1} }, "stage2.sparse.onnx", "want int64 [N]"},
		{"masked graph without mask", func(s, m, d *GraphInfo) { m.Inputs = m.Inputs[:1] }, "stage2.onnx", "has 1 inputs, want 2"},
		{"masked graph's mask misnamed", func(s, m, d *GraphInfo) { m.Inputs[1].Name = "m" }, "stage2.onnx", "unexpected input \"m\""},
		{"masked graph's mask shape", func(s, m, d *GraphInfo) { m.Inputs[1].Shape = []int64{1, 1, 2, 2} }, "stage2.onnx", "input \"mask\": shape"},
		{"dense graph takes a table", func(s, m, d *GraphInfo) { d.Inputs = append(d.Inputs, s.Inputs[1]) }, "stage2.dense.onnx", "inputs"},
		{"dense graph lacks logits", func(s, m, d *GraphInfo) { d.Outputs = d.Outputs[1:] }, "stage2.dense.onnx", "no output"},
		{"masked state of another shape", func(s, m, d *GraphInfo) { m.Outputs[1].Shape = []int64{1, 17, int64(h), int64(w)} }, "stage2.onnx", "shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, m, d := graphs()
			tt.breakIt(&s, &m, &d)
			err := b.CheckSparseGraphs(1, s, m, d)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.file+":") || !strings.Contains(err.Error(), tt.wantPart) {
				t.Errorf("got %v, want an error naming %s and %q", err, tt.file, tt.wantPart)
			}
		})
	}
}
