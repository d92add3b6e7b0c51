//go:build cgo

package native

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// editPlan rewrites the plan at path through edit on its decoded JSON.
func editPlan(t *testing.T, path string, edit func(doc map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if raw, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// opAt is op i of a decoded plan.
func opAt(doc map[string]any, i int) map[string]any {
	return doc["ops"].([]any)[i].(map[string]any)
}

func termAt(doc map[string]any, i, k int) map[string]any {
	return opAt(doc, i)["terms"].([]any)[k].(map[string]any)
}

func tensorAt(doc map[string]any, name string) map[string]any {
	return doc["tensors"].(map[string]any)[name].(map[string]any)
}

// TestLoadRejectsBadPlans: every rule of the plan format, broken once in the
// valid hrnetLike plan, is an error naming the plan file and the field.
// hrnetLike's ops: 0 conv x0→a1 3×3, 1 conv a1→a2 (residual x0), 2 conv
// a2→b1 3×3 s2 (residual x1), 3 conv x1→c1 1×1, 4 sum y0 = a2 + up2(c1),
// 5 sum y1, 6 conv y1→d1 s2, 7 concat e, 8 avgpool f, 9 conv f→g (bias),
// 10 sum h = up2(g), 11 conv h→logits.
func TestLoadRejectsBadPlans(t *testing.T) {
	cases := []struct {
		name string
		edit func(doc map[string]any)
		// weights, when set, rewrites the weights file.
		weights func(t *testing.T, path string)
		want    string // in the error, after the plan's path
	}{
		{name: "format", edit: func(d map[string]any) { d["format"] = "adpc-plan/2" }, want: `format: got "adpc-plan/2"`},
		{name: "unknown field", edit: func(d map[string]any) { opAt(d, 0)["dilation"] = 2 }, want: `not a valid plan: json: unknown field "dilation"`},
		{name: "weights path", edit: func(d map[string]any) { d["weights"] = "../stage.weights" }, want: "weights: got \"../stage.weights\", want a file name"},
		{name: "weights missing", edit: func(d map[string]any) { d["weights"] = "other.weights" }, want: "weights: stat"},
		{name: "channels", edit: func(d map[string]any) { tensorAt(d, "a1")["channels"] = 0 }, want: "tensors.a1.channels: got 0"},
		{name: "stride power of two", edit: func(d map[string]any) { tensorAt(d, "a1")["stride"] = 6 }, want: "tensors.a1.stride: got 6, want a power of two"},
		{name: "stride divides", edit: func(d map[string]any) { tensorAt(d, "a1")["stride"] = 64 }, want: "tensors.a1.stride: 64 does not divide the input size 32x64"},
		{name: "unused tensor", edit: func(d map[string]any) {
			d["tensors"].(map[string]any)["zz"] = map[string]any{"channels": 1, "stride": 4}
		},
			want: "tensors.zz: declared but neither an input nor written"},
		{name: "no inputs", edit: func(d map[string]any) { d["inputs"] = []any{} }, want: "inputs: empty"},
		{name: "input undeclared", edit: func(d map[string]any) { d["inputs"] = []any{"x0", "x9"} }, want: `inputs[1]: tensor "x9" is not declared`},
		{name: "op kind", edit: func(d map[string]any) { opAt(d, 8)["op"] = "maxpool" }, want: `ops[8].op: got "maxpool"`},
		{name: "written twice", edit: func(d map[string]any) { opAt(d, 1)["out"] = "a1" }, want: `ops[1].out: tensor "a1" is written a second time`},
		{name: "input written", edit: func(d map[string]any) { opAt(d, 0)["out"] = "x0" }, want: `ops[0].out: tensor "x0" is written a second time`},
		{name: "read undeclared", edit: func(d map[string]any) { opAt(d, 0)["in"] = "zz" }, want: `ops[0].in: tensor "zz" is not declared`},
		{name: "read before written", edit: func(d map[string]any) { opAt(d, 0)["in"] = "a2" }, want: `ops[0].in: tensor "a2" is read before an op writes it`},
		{name: "kernel", edit: func(d map[string]any) { opAt(d, 0)["kernel"] = 5 }, want: "ops[0].kernel: got 5, want 1 or 3"},
		{name: "conv stride", edit: func(d map[string]any) { opAt(d, 0)["stride"] = 4 }, want: "ops[0].stride: got 4, want 1 or 2"},
		{name: "conv out stride", edit: func(d map[string]any) { opAt(d, 0)["stride"] = 2 }, want: `ops[0].out: tensor "a1" has stride 4, want the input's 4 times 2`},
		{name: "weight shape", edit: func(d map[string]any) { opAt(d, 0)["weight"].(map[string]any)["shape"] = []int{6, 6, 1, 1} },
			want: "ops[0].weight.shape: got [6 6 1 1], want [6 6 3 3]"},
		{name: "weight missing", edit: func(d map[string]any) { opAt(d, 0)["weight"] = nil }, want: "ops[0].weight: missing"},
		{name: "weight offset outside", edit: func(d map[string]any) { opAt(d, 0)["weight"].(map[string]any)["offset"] = 1 << 20 },
			want: "ops[0].weight.offset: bytes 1048576..1049872 lie outside stage.weights"},
		{name: "weight offset aligned", edit: func(d map[string]any) { opAt(d, 0)["weight"].(map[string]any)["offset"] = 2 },
			want: "ops[0].weight.offset: got 2, want a non-negative multiple of 4"},
		{name: "ref neither", edit: func(d map[string]any) { delete(opAt(d, 0)["weight"].(map[string]any), "offset") },
			want: "ops[0].weight: neither offset nor values"},
		{name: "bias values", edit: func(d map[string]any) { opAt(d, 9)["bias"].(map[string]any)["values"] = []float64{1, 2} },
			want: "ops[9].bias.values: 2 values, want 5"},
		{name: "ref both", edit: func(d map[string]any) { opAt(d, 9)["bias"].(map[string]any)["offset"] = 0 },
			want: "ops[9].bias: both offset and values, want one"},
		{name: "inline beyond float32", edit: func(d map[string]any) { opAt(d, 9)["bias"].(map[string]any)["values"].([]any)[1] = 1e39 },
			want: "ops[9].bias.values[1]: got 1e+39, want a finite float32"},
		{name: "tap beyond float32", edit: func(d map[string]any) { opAt(d, 0)["taps"].([]any)[2] = []float64{1, 1, -1e39} },
			want: "ops[0].taps[2]: weight -1e+39, want a finite float32"},
		{name: "tap fraction", edit: func(d map[string]any) { opAt(d, 0)["taps"].([]any)[0] = []float64{0.5, 1, 0.1} },
			want: "ops[0].taps[0]: offset (0.5, 1), want integers within ±3"},
		{name: "bn eps", edit: func(d map[string]any) { opAt(d, 0)["bn"].(map[string]any)["eps"] = 0 }, want: "ops[0].bn.eps: got 0"},
		{name: "bn gamma shape", edit: func(d map[string]any) {
			opAt(d, 0)["bn"].(map[string]any)["gamma"].(map[string]any)["shape"] = []int{5}
		}, want: "ops[0].bn.gamma.shape: got [5], want [6]"},
		{name: "tap offset", edit: func(d map[string]any) { opAt(d, 0)["taps"].([]any)[0] = []float64{4, 0, 0.1} },
			want: "ops[0].taps[0]: offset (4, 0), want integers within ±3"},
		{name: "tap centre", edit: func(d map[string]any) { opAt(d, 0)["taps"].([]any)[0] = []float64{0, 0, 0.1} },
			want: "ops[0].taps[0]: offset (0, 0)"},
		{name: "tap arity", edit: func(d map[string]any) { opAt(d, 0)["taps"].([]any)[0] = []float64{1, 0} },
			want: "ops[0].taps[0]: 2 numbers, want [dy, dx, w]"},
		{name: "residual shape", edit: func(d map[string]any) { opAt(d, 1)["residual"] = "x1" },
			want: `ops[1].residual: tensor "x1" is 8 channels at stride 8, want the output's 6 at stride 4`},
		{name: "sum channels", edit: func(d map[string]any) { termAt(d, 5, 1)["in"] = "c1" },
			want: `ops[5].terms[1].in: tensor "c1" has 6 channels, want the output's 8`},
		{name: "upsample factor", edit: func(d map[string]any) { termAt(d, 4, 1)["upsample"] = 3 },
			want: "ops[4].terms[1].upsample: got 3, want 1, 2, 4 or 8"},
		{name: "upsample stride", edit: func(d map[string]any) { termAt(d, 4, 1)["upsample"] = 4 },
			want: `ops[4].terms[1].in: tensor "c1" has stride 8, want 16`},
		{name: "no terms", edit: func(d map[string]any) { opAt(d, 10)["terms"] = []any{} }, want: "ops[10].terms: empty"},
		{name: "concat channels", edit: func(d map[string]any) { tensorAt(d, "e")["channels"] = 25; tensorAt(d, "f")["channels"] = 25 },
			want: "ops[7].out: 25 channels, want the terms' sum 26"},
		{name: "avgpool stride", edit: func(d map[string]any) { tensorAt(d, "f")["stride"] = 16 },
			want: "ops[8].out: stride 16, want twice the input's 4"},
		{name: "state unknown", edit: func(d map[string]any) { d["state"] = []any{"y0", "nope"} }, want: `state[1]: tensor "nope" is not declared`},
		{name: "state twice", edit: func(d map[string]any) { d["state"] = []any{"y0", "y0"} }, want: `state[1]: "y0" listed twice`},
		{name: "logits", edit: func(d map[string]any) { d["logits"] = "" }, want: `logits: tensor "" is not declared`},
		{name: "weight not finite", weights: func(t *testing.T, path string) { poke(t, path, 3, float32(math.NaN())) },
			want: "ops[0].weight: value 3 is NaN, want finite"},
		{name: "variance", weights: func(t *testing.T, path string) {
			// op 0's weights are 6·6·9 floats, its gamma 6, then its mean and var.
			poke(t, path, 6*6*9+6+6+2, -1)
		}, want: "ops[0].bn.var: value 2 is -1: var+eps must be positive"},
		{name: "weights short", weights: func(t *testing.T, path string) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}, want: "ops[0].weight.offset: bytes 0..1296 lie outside stage.weights (100 bytes)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := hrnetLike(9).write(t, t.TempDir())
			if c.edit != nil {
				editPlan(t, path, c.edit)
			}
			if c.weights != nil {
				c.weights(t, filepath.Join(filepath.Dir(path), "stage.weights"))
			}
			s, err := Load(path, testHeight, testWidth, 2)
			if err == nil {
				s.Close()
				t.Fatalf("Load accepted the plan, want an error with %q", c.want)
			}
			if want := "native plan " + path + ": " + c.want; !strings.Contains(err.Error(), want) {
				t.Errorf("Load: %v\nwant an error containing %q", err, want)
			}
		})
	}
}

// poke overwrites float i of the weights file at path.
func poke(t *testing.T, path string, i int, v float32) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsBadArguments(t *testing.T) {
	path := hrnetLike(9).write(t, t.TempDir())
	for _, c := range []struct {
		name                   string
		height, width, threads int
		want                   string
	}{
		{"threads", testHeight, testWidth, 0, "threads 0, want 1..256"},
		{"size", 0, testWidth, 1, "input size 0x64, want positive"},
		{"stride divides", 40, testWidth, 1, "does not divide the input size 40x64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Load(path, c.height, c.width, c.threads)
			if err == nil {
				s.Close()
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Load: %v, want the path and %q", err, c.want)
			}
		})
	}
}

// FuzzReadPlan: no plan bytes make readPlan panic, and an accepted plan's
// references lie inside its weights file.
func FuzzReadPlan(f *testing.F) {
	dir := f.TempDir()
	seed := hrnetLike(9).write(f, dir)
	raw, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"format":"adpc-plan/1","weights":"stage.weights","inputs":["x"],"tensors":{"x":{"channels":1,"stride":1}},"ops":[]}`))
	fi, err := os.Stat(filepath.Join(dir, "stage.weights"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "stage.plan.json")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(dir, "stage.weights"), filepath.Join(filepath.Dir(path), "stage.weights")); err != nil {
			t.Fatal(err)
		}
		p, err := readPlan(path, testHeight, testWidth)
		if err != nil {
			return
		}
		for _, r := range p.refs() {
			if r.values == nil && (r.offset < 0 || r.offset+4*int64(r.count) > fi.Size()) {
				t.Errorf("%s: bytes %d..%d outside the %d-byte weights file", r.field, r.offset, r.offset+4*int64(r.count), fi.Size())
			}
		}
	})
}
