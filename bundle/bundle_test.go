package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const tinyDir = "../testdata/bundles/tiny"

func TestLoadTinyBundle(t *testing.T) {
	b, err := Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Task != TaskSegmentation || len(b.Stages) != 4 || b.Channels() != 19 || len(b.SHA256) != 64 {
		t.Errorf("got task %q, %d stages, %d channels, sha %q", b.Task, len(b.Stages), b.Channels(), b.SHA256)
	}
	if h, w := b.OutputSize(); h != 16 || w != 32 {
		t.Errorf("output size %dx%d, want 16x32", h, w)
	}
}

// tinyManifest returns the tiny bundle's manifest as a generic JSON value.
func tinyManifest(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(tinyDir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func stage(m map[string]any, i int) map[string]any {
	return m["stages"].([]any)[i].(map[string]any)
}

func TestParseRejectsBrokenManifests(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(m map[string]any)
		wantField string
		wantMsg   string
	}{
		{"unknown field", func(m map[string]any) { m["lables"] = []any{} }, "", `unknown field "lables"`},
		{"wrong format", func(m map[string]any) { m["format"] = "anytime-bundle/2" }, "format", "want \"anytime-bundle/1\""},
		{"bad task", func(m map[string]any) { m["task"] = "detection" }, "task", "detection"},
		{"input not NCHW", func(m map[string]any) { m["input"].(map[string]any)["shape"] = []any{1, 64, 128} }, "input.shape", "[1, 3, H, W]"},
		{"zero std", func(m map[string]any) { m["input"].(map[string]any)["std"] = []any{0.2, 0, 0.2} }, "input.std[1]", "positive"},
		{"stride does not divide", func(m map[string]any) { m["output_stride"] = 5 }, "output_stride", "not divisible"},
		{"no labels", func(m map[string]any) { m["labels"] = []any{} }, "labels", "at least one"},
		{"duplicate label", func(m map[string]any) {
			l := m["labels"].([]any)
			l[1].(map[string]any)["name"] = l[0].(map[string]any)["name"]
		}, "labels[1].name", "duplicate"},
		{"heatmap criterion on segmentation", func(m map[string]any) { m["confidence"].(map[string]any)["criterion"] = "heatmap_peak" }, "confidence.criterion", "keypoints"},
		{"no stages", func(m map[string]any) { m["stages"] = []any{} }, "stages", "at least one"},
		{"first stage masked", func(m map[string]any) { stage(m, 0)["mode"] = "masked" }, "stages[0].mode", "must be \"dense\""},
		{"mask on dense stage", func(m map[string]any) {
			stage(m, 1)["mode"] = "dense"
			stage(m, 1)["macs"].(map[string]any)["masked"] = map[string]any{}
		}, "stages[1].inputs.mask", "only masked stages"},
		{"masked stage without mask", func(m map[string]any) {
			in := stage(m, 2)["inputs"].(map[string]any)
			for k, v := range in {
				if v == "mask" {
					delete(in, k)
				}
			}
		}, "stages[2].inputs", "no input fed from \"mask\""},
		{"state consumed before produced", func(m map[string]any) {
			in := stage(m, 1)["inputs"].(map[string]any)
			for k, v := range in {
				if strings.HasPrefix(v.(string), "state:") {
					in[k] = "state:nope"
					break
				}
			}
		}, "stages[1].inputs.", `state "nope" is not produced`},
		{"state produced twice", func(m map[string]any) {
			stage(m, 1)["state"] = append(stage(m, 1)["state"].([]any), stage(m, 0)["state"].([]any)[0])
		}, "stages[1].state", "already produced"},
		{"file outside bundle", func(m map[string]any) { stage(m, 3)["file"] = "../stage4.onnx" }, "stages[3].file", "inside the bundle"},
		{"unknown mode", func(m map[string]any) { stage(m, 3)["mode"] = "tiled" }, "stages[3].mode", "tiled"},
		// A stage as earlier versions exported blocks mode: refused by its
		// mode, not by the fields that came with it.
		{"removed blocks mode", func(m map[string]any) {
			st := stage(m, 2)
			st["mode"] = "blocks"
			st["blocks"] = map[string]any{"size": 8, "buckets": []any{1, 2}, "dense": map[string]any{"file": "stage3.dense.onnx", "mask": "mask"}}
			st["inputs"].(map[string]any)["ids"] = "blocks"
			st["inputs"].(map[string]any)["neighbours"] = "neighbours"
		}, "stages[2].mode", `"blocks" mode was removed in this version (the exact "sparse" mode is faster and needs no fine-tuning); re-export the model with --variant adpc (sparse mode)`},
		{"removed blocks mode alone", func(m map[string]any) { stage(m, 1)["mode"] = "blocks" }, "stages[1].mode", "re-export the model with --variant adpc"},
		{"bad stride key", func(m map[string]any) {
			stage(m, 1)["macs"].(map[string]any)["masked"] = map[string]any{"x": map[string]any{"macs": 1, "out_channels": 1}}
		}, "stages[1].macs.masked.x", "output stride"},
		{"trailing data", nil, "", "trailing data"},
		// Numbers out of bounds: each would crash or wrap at start-up.
		{"257 labels", func(m map[string]any) {
			var l []any
			for i := range 257 {
				l = append(l, map[string]any{"name": fmt.Sprint("c", i), "color": []any{0, 0, 0}})
			}
			m["labels"] = l
		}, "labels", "at most 256"},
		{"huge input", func(m map[string]any) { m["input"].(map[string]any)["shape"] = []any{1, 3, 1 << 20, 1 << 20} }, "input.shape", "1..8192"},
		{"huge scale", func(m map[string]any) { m["input"].(map[string]any)["scale"] = 1e30 }, "input.scale", "up to"},
		{"huge mean", func(m map[string]any) { m["input"].(map[string]any)["mean"] = []any{0, 1e30, 0} }, "input.mean[1]", "[-1e+06, 1e+06]"},
		{"probability threshold above 1", func(m map[string]any) { m["confidence"].(map[string]any)["threshold"] = 1.5 }, "confidence.threshold", "[0, 1]"},
		{"huge MACs", func(m map[string]any) { stage(m, 0)["macs"].(map[string]any)["fixed"] = int64(1) << 62 }, "stages[0].macs.fixed", "0..1125899906842624"},
		{"huge stride key", func(m map[string]any) {
			stage(m, 1)["macs"].(map[string]any)["masked"] = map[string]any{"1000000": map[string]any{"macs": 1, "out_channels": 1}}
		}, "stages[1].macs.masked.1000000", "1..8192"},
		{"too many stages", func(m map[string]any) {
			for range MaxStages {
				m["stages"] = append(m["stages"].([]any), stage(m, 1))
			}
		}, "stages", "at most 64"},
		{"opset", func(m map[string]any) { m["provenance"] = map[string]any{"opset": -1} }, "provenance.opset", "0..1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tinyManifest(t)
			var raw []byte
			if tt.edit != nil {
				tt.edit(m)
				raw, _ = json.Marshal(m)
			} else {
				raw, _ = json.Marshal(m)
				raw = append(raw, []byte(`{}`)...)
			}
			_, err := Parse("x/bundle.json", raw)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if !strings.HasPrefix(fe.Field, tt.wantField) || !strings.Contains(fe.Msg, tt.wantMsg) || fe.File != "x/bundle.json" {
				t.Errorf("got %q, want field %q and a message containing %q", err, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestLoadMissingStageFile(t *testing.T) {
	dir := t.TempDir()
	raw, _ := os.ReadFile(filepath.Join(tinyDir, ManifestFile))
	os.WriteFile(filepath.Join(dir, ManifestFile), raw, 0o644)
	_, err := Load(dir)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "stages[0].file") || !strings.Contains(err.Error(), "stage1.onnx") {
		t.Fatalf("got %v, want an error naming stages[0].file", err)
	}
}

func TestCheckGraphs(t *testing.T) {
	b, err := Load(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	h, w := b.OutputSize()
	// Graphs as the manifest implies; each case then breaks one thing.
	graphs := func() []GraphInfo {
		var g []GraphInfo
		states := map[string][]int64{}
		for i, s := range b.Stages {
			var gi GraphInfo
			for name, src := range s.Inputs {
				ti := TensorInfo{Name: name, Type: "float32"}
				switch {
				case src == SourceInput:
					ti.Shape = b.Input.Shape
				case src == SourceMask:
					ti.Shape = []int64{1, 1, int64(h), int64(w)}
				default:
					ti.Shape = states[strings.TrimPrefix(src, "state:")]
				}
				gi.Inputs = append(gi.Inputs, ti)
			}
			gi.Outputs = append(gi.Outputs, TensorInfo{Name: s.Logits, Type: "float32", Shape: []int64{1, int64(b.Channels()), int64(h), int64(w)}})
			for j, st := range s.State {
				shape := []int64{1, int64(8 * (j + 1)), int64(h), int64(w)}
				states[st] = shape
				gi.Outputs = append(gi.Outputs, TensorInfo{Name: st, Type: "float32", Shape: shape})
			}
			g = append(g, gi)
			_ = i
		}
		return g
	}
	if err := b.CheckGraphs(graphs()); err != nil {
		t.Fatalf("consistent graphs refused: %v", err)
	}
	tests := []struct {
		name    string
		breakIt func(g []GraphInfo)
		want    string
	}{
		{"renamed input", func(g []GraphInfo) { g[0].Inputs[0].Name = "img" }, "graph inputs are"},
		{"wrong image shape", func(g []GraphInfo) { g[0].Inputs[0].Shape = []int64{1, 3, 32, 32} }, "shape"},
		{"missing logits", func(g []GraphInfo) { g[1].Outputs = g[1].Outputs[1:] }, "no output"},
		{"too few channels", func(g []GraphInfo) { g[2].Outputs[0].Shape = []int64{1, 18, int64(h), int64(w)} }, "logits"},
		{"int mask", func(g []GraphInfo) {
			for i := range g[1].Inputs {
				if b.Stages[1].Inputs[g[1].Inputs[i].Name] == SourceMask {
					g[1].Inputs[i].Type = "int64"
				}
			}
		}, "type int64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := graphs()
			tt.breakIt(g)
			err := b.CheckGraphs(g)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ".onnx") {
				t.Errorf("got %v, want an error naming the file and %q", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	raw, _ := os.ReadFile(filepath.Join(tinyDir, ManifestFile))
	f.Add(raw)
	f.Add([]byte(`{"format":"anytime-bundle/1"}`))
	f.Add([]byte(`{"format":"anytime-bundle/1","stages":[{"inputs":{"a":"state:"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse("fuzz.json", raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// A manifest that passes must be safe to use.
		h, w := m.OutputSize()
		if h <= 0 || w <= 0 || m.Channels() <= 0 || len(m.Stages) == 0 {
			t.Fatalf("accepted manifest with output %dx%d, %d channels", h, w, m.Channels())
		}
	})
}

// TestLoadRefusesDevicesAndFIFOs links bundle.json to /dev/zero (read whole,
// it exhausts memory) and a stage file to a FIFO (opened, it blocks).
func TestLoadRefusesDevicesAndFIFOs(t *testing.T) {
	zero := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(zero, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	fifo := t.TempDir()
	raw, _ := os.ReadFile(filepath.Join(tinyDir, ManifestFile))
	os.WriteFile(filepath.Join(fifo, ManifestFile), raw, 0o644)
	m, err := Parse("tiny", raw)
	if err != nil {
		t.Fatal(err)
	}
	// Stage files are hashed in order: the first one is the FIFO.
	if err := syscall.Mkfifo(filepath.Join(fifo, m.Stages[0].File), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ dir, want string }{
		{zero, "bundle.json: not a regular file (a character device)"},
		{fifo, "stages[0].file"},
	} {
		_, err := Load(tt.dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}
