//go:build cgo

package native

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file checks Run against a naive float64 implementation of the plan
// semantics (the PyTorch masked forward: dense convolution at every pixel,
// mask, RBF fill over the masked output, BatchNorm, residual, ReLU; bilinear
// upsampling with align_corners=False; 2×2 average pooling), on a plan built
// here with a few of every op over three strides.

// testPlan is a plan as the test builds it: the JSON the executor reads and
// the same ops with their values for the reference.
type testPlan struct {
	rng     *rand.Rand
	tensors map[string]tensorJSON
	inputs  []string
	state   []string
	logits  string
	ops     []testOp
	weights []float32
}

// testOp is one op with its weights as values.
type testOp struct {
	json     map[string]any
	kind     string
	in, out  string
	kernel   int
	stride   int
	weight   []float32
	bias     []float32
	bn       *testBN
	taps     []Tap
	residual string
	relu     bool
	terms    []termJSON
}

type testBN struct {
	gamma, beta, mean, variance []float32
	eps                         float64
}

func newTestPlan(seed uint64) *testPlan {
	return &testPlan{rng: rand.New(rand.NewPCG(seed, 1)), tensors: map[string]tensorJSON{}}
}

func (tp *testPlan) tensor(name string, channels, stride int) {
	tp.tensors[name] = tensorJSON{Channels: channels, Stride: stride}
}

// values draws n values uniform in [lo, hi).
func (tp *testPlan) values(n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*tp.rng.Float64())
	}
	return v
}

// ref stores v in the weights file (or inline, when small and inline is set)
// and returns its JSON reference.
func (tp *testPlan) ref(v []float32, inline bool, shape ...int) map[string]any {
	if inline {
		return map[string]any{"values": v, "shape": shape}
	}
	off := 4 * len(tp.weights)
	tp.weights = append(tp.weights, v...)
	return map[string]any{"offset": off, "shape": shape}
}

// rbfTaps is a fill kernel over the Chebyshev radius r (centre excluded):
// exp(-λ²d²) normalised over the window plus 1e-5, as the reference.
func (tp *testPlan) rbfTaps(r int) []Tap {
	lambda := 0.5 + tp.rng.Float64()
	var taps []Tap
	sum := 1e-5
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			if dy == 0 && dx == 0 {
				continue
			}
			w := math.Exp(-lambda * lambda * float64(dy*dy+dx*dx))
			sum += w
			taps = append(taps, Tap{DY: int32(dy), DX: int32(dx), W: float32(w)})
		}
	}
	for i := range taps {
		taps[i].W = float32(float64(taps[i].W) / sum)
	}
	return taps
}

type convOpts struct {
	kernel, stride int
	bias, bn       bool
	fill           int // Chebyshev radius of the fill taps; 0 for none
	residual       string
	relu           bool
}

func (tp *testPlan) conv(in, out string, o convOpts) {
	cin, cout := tp.tensors[in].Channels, tp.tensors[out].Channels
	bound := 1 / math.Sqrt(float64(cin*o.kernel*o.kernel))
	op := testOp{kind: opConv, in: in, out: out, kernel: o.kernel, stride: o.stride, residual: o.residual, relu: o.relu,
		weight: tp.values(cout*cin*o.kernel*o.kernel, -2*bound, 2*bound)}
	j := map[string]any{"op": "conv", "in": in, "out": out, "kernel": o.kernel, "stride": o.stride,
		"weight": tp.ref(op.weight, false, cout, cin, o.kernel, o.kernel), "bias": nil, "bn": nil,
		"taps": [][]float64{}, "residual": nil, "relu": o.relu}
	if o.bias {
		op.bias = tp.values(cout, -0.5, 0.5)
		j["bias"] = tp.ref(op.bias, true, cout)
	}
	if o.bn {
		op.bn = &testBN{gamma: tp.values(cout, 0.5, 1.5), beta: tp.values(cout, -0.5, 0.5),
			mean: tp.values(cout, -0.3, 0.3), variance: tp.values(cout, 0.5, 2), eps: 1e-5}
		j["bn"] = map[string]any{"gamma": tp.ref(op.bn.gamma, false, cout), "beta": tp.ref(op.bn.beta, true, cout),
			"mean": tp.ref(op.bn.mean, false, cout), "var": tp.ref(op.bn.variance, false, cout), "eps": op.bn.eps}
	}
	if o.fill > 0 {
		op.taps = tp.rbfTaps(o.fill)
		var taps [][]float64
		for _, t := range op.taps {
			taps = append(taps, []float64{float64(t.DY), float64(t.DX), float64(t.W)})
		}
		j["taps"] = taps
	}
	if o.residual != "" {
		j["residual"] = o.residual
	}
	op.json = j
	tp.ops = append(tp.ops, op)
}

func (tp *testPlan) resample(kind, out string, relu bool, terms ...termJSON) {
	j := map[string]any{"op": kind, "out": out, "terms": terms}
	if kind == opSum {
		j["relu"] = relu
	}
	tp.ops = append(tp.ops, testOp{json: j, kind: kind, out: out, terms: terms, relu: relu})
}

func (tp *testPlan) avgpool(in, out string) {
	tp.ops = append(tp.ops, testOp{json: map[string]any{"op": "avgpool", "in": in, "out": out}, kind: opAvgPool, in: in, out: out})
}

// write writes stage.plan.json and stage.weights into dir and returns the
// plan's path.
func (tp *testPlan) write(t testing.TB, dir string) string {
	t.Helper()
	var ops []map[string]any
	for _, o := range tp.ops {
		ops = append(ops, o.json)
	}
	doc := map[string]any{"format": PlanFormat, "weights": "stage.weights", "inputs": tp.inputs, "state": tp.state,
		"logits": tp.logits, "tensors": tp.tensors, "ops": ops}
	raw, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stage.plan.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	w := make([]byte, 4*len(tp.weights))
	for i, x := range tp.weights {
		binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(filepath.Join(dir, "stage.weights"), w, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hrnetLike is a small stage shaped like an HRNet stage: two branches (stride
// 4 and 8) with residual blocks, a stride-2 3×3 convolution to a third
// branch at 16, fuse sums with upsampling, the exit input (a concat of
// upsampled branches) and a head with pooling, a 1×1 convolution with bias
// and BN, an upsample, a 1×1 convolution read only by the classifier and the
// classifier (bias, no BN).
func hrnetLike(seed uint64) *testPlan {
	tp := newTestPlan(seed)
	tp.tensor("x0", 6, 4)
	tp.tensor("x1", 8, 8)
	tp.tensor("a1", 6, 4)
	tp.tensor("a2", 6, 4)
	tp.tensor("b1", 8, 8)
	tp.tensor("c1", 6, 8)
	tp.tensor("y0", 6, 4)
	tp.tensor("y1", 8, 8)
	tp.tensor("d1", 12, 16)
	tp.tensor("e", 26, 4)
	tp.tensor("f", 26, 8)
	tp.tensor("g", 5, 8)
	tp.tensor("h", 5, 4)
	tp.tensor("k", 4, 4)
	tp.tensor("logits", 3, 4)
	tp.inputs = []string{"x0", "x1"}
	tp.conv("x0", "a1", convOpts{kernel: 3, stride: 1, bn: true, fill: 1, relu: true})
	tp.conv("a1", "a2", convOpts{kernel: 3, stride: 1, bn: true, fill: 2, residual: "x0", relu: true})
	tp.conv("a2", "b1", convOpts{kernel: 3, stride: 2, bn: true, fill: 1, residual: "x1", relu: true})
	tp.conv("x1", "c1", convOpts{kernel: 1, stride: 1, bn: true, fill: 1})
	tp.resample(opSum, "y0", true, termJSON{In: "a2", Upsample: 1}, termJSON{In: "c1", Upsample: 2})
	tp.resample(opSum, "y1", true, termJSON{In: "b1", Upsample: 1}, termJSON{In: "x1", Upsample: 1})
	tp.conv("y1", "d1", convOpts{kernel: 3, stride: 2, bn: true, fill: 3, relu: true})
	tp.resample(opConcat, "e", false, termJSON{In: "y0", Upsample: 1}, termJSON{In: "y1", Upsample: 2}, termJSON{In: "d1", Upsample: 4})
	tp.avgpool("e", "f")
	tp.conv("f", "g", convOpts{kernel: 1, stride: 1, bias: true, bn: true, fill: 2, relu: true})
	tp.resample(opSum, "h", false, termJSON{In: "g", Upsample: 2})
	tp.conv("h", "k", convOpts{kernel: 1, stride: 1, bias: true, bn: true, fill: 2, relu: true})
	tp.conv("k", "logits", convOpts{kernel: 1, stride: 1, bias: true, fill: 1})
	tp.state = []string{"y0", "y1", "d1"}
	tp.logits = "logits"
	return tp
}

// oddities is a plan of the less common forms the format allows: a 1×1
// stride-2 convolution, one with neither bias nor BN nor taps, a residual on
// a 1×1 convolution, a three-term sum with factors 1, 2 and 8 (stride 32), a
// concat with factor 8, pooling a convolution's output, a state output that
// a later op reads, and an input passed through as a state output.
func oddities(seed uint64) *testPlan {
	tp := newTestPlan(seed)
	tp.tensor("x0", 5, 4)
	tp.tensor("x1", 7, 32)
	tp.tensor("p", 6, 8)
	tp.tensor("q", 6, 8)
	tp.tensor("r", 6, 16)
	tp.tensor("u", 7, 32)
	tp.tensor("v", 6, 32)
	tp.tensor("w", 6, 4)
	tp.tensor("cat", 18, 4)
	tp.tensor("logits", 2, 4)
	tp.inputs = []string{"x0", "x1"}
	tp.conv("x0", "p", convOpts{kernel: 1, stride: 2, bn: true, fill: 1, relu: true})
	tp.conv("p", "q", convOpts{kernel: 1, stride: 1, bias: true, fill: 2, residual: "p", relu: true})
	tp.conv("q", "r", convOpts{kernel: 3, stride: 2})
	tp.conv("r", "u", convOpts{kernel: 3, stride: 2, bn: true, fill: 3, residual: "x1"})
	tp.conv("u", "v", convOpts{kernel: 1, stride: 1, bn: true, fill: 1})
	tp.resample(opSum, "w", true, termJSON{In: "q", Upsample: 2}, termJSON{In: "v", Upsample: 8}, termJSON{In: "q", Upsample: 2})
	tp.resample(opConcat, "cat", false, termJSON{In: "w", Upsample: 1}, termJSON{In: "v", Upsample: 8}, termJSON{In: "q", Upsample: 2})
	tp.conv("cat", "logits", convOpts{kernel: 3, stride: 1, bias: true, bn: true, fill: 1})
	tp.state = []string{"q", "x1", "w"}
	tp.logits = "logits"
	return tp
}

func TestRunOddities(t *testing.T) {
	tp := oddities(3)
	radii := tp.bandRadii()
	rng := rand.New(rand.NewPCG(8, 8))
	rc := newRunCase(t, tp, testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	splitAll(s)
	if got, want := s.Strides(), []int{4, 8, 16, 32}; !slices.Equal(got, want) {
		t.Errorf("Strides() = %v, want %v", got, want)
	}
	for _, p := range []float64{0.5, 0.2, 1, 0} {
		t.Run(fmt.Sprint(p), func(t *testing.T) { rc.check(t, s, randomMasks(rng, radii, testHeight, testWidth, p, nil)) })
	}
}

// ---- the reference ----

// field is a float64 NCHW map (N = 1).
type field struct {
	c, h, w int
	v       []float64
}

func newField(c, h, w int) *field { return &field{c, h, w, make([]float64, c*h*w)} }

func (f *field) at(c, i, j int) float64 { return f.v[(c*f.h+i)*f.w+j] }

// masks are the computed pixels per stride (true = computed).
type masks map[int][]bool

// reference runs tp's ops naively.
func (tp *testPlan) reference(height, width int, in [][]float32, m masks) map[string]*field {
	env := map[string]*field{}
	for k, name := range tp.inputs {
		t := tp.tensors[name]
		f := newField(t.Channels, height/t.Stride, width/t.Stride)
		for i, x := range in[k] {
			f.v[i] = float64(x)
		}
		env[name] = f
	}
	for _, o := range tp.ops {
		t := tp.tensors[o.out]
		out := newField(t.Channels, height/t.Stride, width/t.Stride)
		switch o.kind {
		case opConv:
			maskedConvRef(out, env[o.in], o, m[t.Stride])
			if o.residual != "" {
				for i := range out.v {
					out.v[i] += env[o.residual].v[i]
				}
			}
			if o.relu {
				relu(out.v)
			}
		case opSum:
			for _, term := range o.terms {
				up := upsample(env[term.In], term.Upsample)
				for i := range out.v {
					out.v[i] += up.v[i]
				}
			}
			if o.relu {
				relu(out.v)
			}
		case opConcat:
			off := 0
			for _, term := range o.terms {
				up := upsample(env[term.In], term.Upsample)
				copy(out.v[off:], up.v)
				off += len(up.v)
			}
		case opAvgPool:
			src := env[o.in]
			for c := 0; c < out.c; c++ {
				for i := 0; i < out.h; i++ {
					for j := 0; j < out.w; j++ {
						out.v[(c*out.h+i)*out.w+j] = (src.at(c, 2*i, 2*j) + src.at(c, 2*i, 2*j+1) +
							src.at(c, 2*i+1, 2*j) + src.at(c, 2*i+1, 2*j+1)) / 4
					}
				}
			}
		}
		env[o.out] = out
	}
	return env
}

// maskedConvRef is the masked convolution: y = conv(x)+bias at every pixel, z =
// y·m + fill(y·m)·(1−m), then BN.
func maskedConvRef(out, x *field, o testOp, mask []bool) {
	pad := o.kernel / 2
	y := newField(out.c, out.h, out.w)
	for co := 0; co < out.c; co++ {
		for i := 0; i < out.h; i++ {
			for j := 0; j < out.w; j++ {
				s := 0.0
				if o.bias != nil {
					s = float64(o.bias[co])
				}
				for ci := 0; ci < x.c; ci++ {
					for ky := 0; ky < o.kernel; ky++ {
						for kx := 0; kx < o.kernel; kx++ {
							yi, xj := i*o.stride+ky-pad, j*o.stride+kx-pad
							if yi < 0 || yi >= x.h || xj < 0 || xj >= x.w {
								continue
							}
							s += float64(o.weight[((co*x.c+ci)*o.kernel+ky)*o.kernel+kx]) * x.at(ci, yi, xj)
						}
					}
				}
				if !mask[i*out.w+j] {
					s = 0 // y·m
				}
				y.v[(co*out.h+i)*out.w+j] = s
			}
		}
	}
	for co := 0; co < out.c; co++ {
		for i := 0; i < out.h; i++ {
			for j := 0; j < out.w; j++ {
				z := y.at(co, i, j)
				if !mask[i*out.w+j] {
					z = 0
					for _, t := range o.taps {
						ti, tj := i+int(t.DY), j+int(t.DX)
						if ti >= 0 && ti < out.h && tj >= 0 && tj < out.w {
							z += float64(t.W) * y.at(co, ti, tj)
						}
					}
				}
				if b := o.bn; b != nil {
					z = (z-float64(b.mean[co]))/math.Sqrt(float64(b.variance[co])+b.eps)*float64(b.gamma[co]) + float64(b.beta[co])
				}
				out.v[(co*out.h+i)*out.w+j] = z
			}
		}
	}
}

func relu(v []float64) {
	for i, x := range v {
		v[i] = max(x, 0)
	}
}

// upsample is PyTorch's bilinear interpolation by an integer factor with
// align_corners=False: source coordinate (dst+0.5)/f−0.5, clamped at 0, the
// neighbour clamped at the edge.
func upsample(src *field, f int) *field {
	if f == 1 {
		return src
	}
	out := newField(src.c, src.h*f, src.w*f)
	coord := func(o, n int) (int, int, float64) {
		s := max((float64(o)+0.5)/float64(f)-0.5, 0)
		i0 := min(int(s), n-1)
		return i0, min(i0+1, n-1), s - float64(i0)
	}
	for c := 0; c < src.c; c++ {
		for i := 0; i < out.h; i++ {
			i0, i1, ly := coord(i, src.h)
			for j := 0; j < out.w; j++ {
				j0, j1, lx := coord(j, src.w)
				out.v[(c*out.h+i)*out.w+j] = (1-ly)*((1-lx)*src.at(c, i0, j0)+lx*src.at(c, i0, j1)) +
					ly*((1-lx)*src.at(c, i1, j0)+lx*src.at(c, i1, j1))
			}
		}
	}
	return out
}

// ---- tables ----

// bandRadii is, per stride, the largest Chebyshev radius of the fill taps of
// the convolutions writing at that stride (the bundle's sparse.bands).
func (tp *testPlan) bandRadii() map[int]int {
	r := map[int]int{}
	for _, o := range tp.ops {
		if o.kind != opConv {
			continue
		}
		s := tp.tensors[o.out].Stride
		r[s] = max(r[s], 0)
		for _, t := range o.taps {
			r[s] = max(r[s], abs(int(t.DY)), abs(int(t.DX)))
		}
	}
	return r
}

func abs(x int) int { return max(x, -x) }

// tables builds index:S and band:S from the masks as docs/bundle.md defines
// them.
func tables(m masks, radii map[int]int, height, width int) (index, band map[int][]int64) {
	index, band = map[int][]int64{}, map[int][]int64{}
	for s, r := range radii {
		h, w := height/s, width/s
		mk := m[s]
		index[s], band[s] = []int64{}, []int64{}
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				p := i*w + j
				if mk[p] {
					index[s] = append(index[s], int64(p))
					continue
				}
				near := false
				for di := -r; di <= r && !near; di++ {
					for dj := -r; dj <= r; dj++ {
						ii, jj := i+di, j+dj
						if ii >= 0 && ii < h && jj >= 0 && jj < w && mk[ii*w+jj] {
							near = true
							break
						}
					}
				}
				if near {
					band[s] = append(band[s], int64(p))
				}
			}
		}
	}
	return index, band
}

// randomMasks draws each pixel computed with probability p per stride;
// overrides fix a stride's fraction.
func randomMasks(rng *rand.Rand, radii map[int]int, height, width int, p float64, overrides map[int]float64) masks {
	m := masks{}
	for s := range radii {
		q := p
		if v, ok := overrides[s]; ok {
			q = v
		}
		mk := make([]bool, (height/s)*(width/s))
		for i := range mk {
			mk[i] = rng.Float64() < q
		}
		m[s] = mk
	}
	return m
}

// ---- running ----

// runCase runs tp through Load/Run and through the reference on random
// inputs and the given masks and compares every output.
type runCase struct {
	tp            *testPlan
	height, width int
	path          string
	in            [][]float32
	state         [][]float32
	logits        []float32
}

func newRunCase(t *testing.T, tp *testPlan, height, width int) *runCase {
	rc := &runCase{tp: tp, height: height, width: width, path: tp.write(t, t.TempDir())}
	for _, name := range tp.inputs {
		rc.in = append(rc.in, tp.values(rc.size(name), -1, 1))
	}
	for _, name := range tp.state {
		rc.state = append(rc.state, make([]float32, rc.size(name)))
	}
	rc.logits = make([]float32, rc.size(tp.logits))
	return rc
}

func (rc *runCase) size(name string) int {
	t := rc.tp.tensors[name]
	return (rc.height / t.Stride) * (rc.width / t.Stride) * t.Channels
}

// check runs s on the masks and compares with the reference; the band
// radii are the plan's own.
func (rc *runCase) check(t *testing.T, s *Stage, m masks) {
	t.Helper()
	rc.checkTables(t, s, m, rc.tp.bandRadii())
}

// checkTables is check with the tables' band radii given.
func (rc *runCase) checkTables(t *testing.T, s *Stage, m masks, radii map[int]int) {
	t.Helper()
	index, band := tables(m, radii, rc.height, rc.width)
	for i := range rc.state {
		fillNaN(rc.state[i])
	}
	fillNaN(rc.logits)
	if err := s.Run(context.Background(), rc.in, index, band, rc.state, rc.logits); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := rc.tp.reference(rc.height, rc.width, rc.in, m)
	for i, name := range rc.tp.state {
		compare(t, "state "+name, rc.state[i], want[name].v)
	}
	compare(t, "logits", rc.logits, want[rc.tp.logits].v)
}

func fillNaN(v []float32) {
	for i := range v {
		v[i] = float32(math.NaN())
	}
}

// compare fails when got differs from want by more than 1e-5 of want's
// largest magnitude anywhere, or in relative L2.
func compare(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	var scale, diff, norm, worst float64
	at := -1
	for i, w := range want {
		scale = max(scale, math.Abs(w))
		d := math.Abs(float64(got[i]) - w)
		if !(d <= worst) { // NaN too
			worst, at = d, i
		}
		diff += d * d
		norm += w * w
	}
	rel := math.Sqrt(diff / max(norm, 1e-30))
	if !(worst <= 1e-5*max(scale, 1e-6)) || !(rel <= 1e-5) {
		t.Errorf("%s: element %d = %v, want %v (max |diff| %.3g of scale %.3g, relative L2 %.3g)",
			what, at, got[at], want[at], worst, scale, rel)
	}
}

const testHeight, testWidth = 32, 64

// splitAll makes s split every operation across all its workers, however
// small (the test maps are far below the grains).
func splitAll(s *Stage) {
	s.shared.pool.macGrain, s.shared.pool.elementGrain = 1, 1
}

func TestRunMatchesReference(t *testing.T) {
	tp := hrnetLike(1)
	radii := tp.bandRadii()
	if want := map[int]int{4: 2, 8: 2, 16: 3}; fmt.Sprint(radii) != fmt.Sprint(want) {
		t.Fatalf("test plan's band radii %v, want %v", radii, want)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	cases := []struct {
		name string
		m    masks
	}{
		{"random half", randomMasks(rng, radii, testHeight, testWidth, 0.5, nil)},
		{"random sparse", randomMasks(rng, radii, testHeight, testWidth, 0.15, nil)},
		{"all ones", randomMasks(rng, radii, testHeight, testWidth, 1, nil)},
		{"all ones at 4 only", randomMasks(rng, radii, testHeight, testWidth, 0.5, map[int]float64{4: 1})},
		{"all ones at 8 and 16", randomMasks(rng, radii, testHeight, testWidth, 0.5, map[int]float64{8: 1, 16: 1})},
		{"none at 16", randomMasks(rng, radii, testHeight, testWidth, 0.6, map[int]float64{16: 0})},
		{"none at 8 and 16", randomMasks(rng, radii, testHeight, testWidth, 0.6, map[int]float64{8: 0, 16: 0})},
		{"all zero", randomMasks(rng, radii, testHeight, testWidth, 0, nil)},
	}
	for _, threads := range []int{1, 3} {
		rc := newRunCase(t, tp, testHeight, testWidth)
		s, err := Load(rc.path, testHeight, testWidth, threads)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		splitAll(s)
		if got, want := s.Inputs(), tp.inputs; !slices.Equal(got, want) {
			t.Errorf("Inputs() = %v, want %v", got, want)
		}
		if got, want := s.Strides(), []int{4, 8, 16}; !slices.Equal(got, want) {
			t.Errorf("Strides() = %v, want %v", got, want)
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/threads=%d", c.name, threads), func(t *testing.T) { rc.check(t, s, c.m) })
		}
	}
}

// TestRowsOnly: a convolution whose output only 1×1 convolutions read skips
// its fill (the band rows are never read); the others fill. That the result
// is still exact is TestRunMatchesReference.
func TestRowsOnly(t *testing.T) {
	rc := newRunCase(t, hrnetLike(2), testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []int
	for i, st := range s.steps {
		if c, ok := st.(*convStep); ok && c.rowsOnly {
			got = append(got, i)
		}
	}
	if want := []int{11}; !slices.Equal(got, want) {
		t.Errorf("convolutions skipping the fill: ops %v, want %v (h→k, read only by the 1×1 classifier)", got, want)
	}
}

// TestRunSharesBuffers: liveness lets tensors share buffers, so the stage
// holds fewer floats than its tensors (and the reference still agrees,
// above).
func TestRunSharesBuffers(t *testing.T) {
	tp := hrnetLike(2)
	rc := newRunCase(t, tp, testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	total := 0
	for name := range tp.tensors {
		total += 4 * rc.size(name)
	}
	if s.bytes >= int64(total) {
		t.Errorf("buffers hold %d bytes, want fewer than the %d of all tensors", s.bytes, total)
	}
	t.Logf("buffers: %d bytes for %d bytes of tensors", s.bytes, total)
}

func TestRunDoesNotAllocate(t *testing.T) {
	tp := hrnetLike(3)
	rc := newRunCase(t, tp, testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	splitAll(s)
	radii := tp.bandRadii()
	index, band := tables(randomMasks(rand.New(rand.NewPCG(3, 3)), radii, testHeight, testWidth, 0.5, nil), radii, testHeight, testWidth)
	ctx := context.Background()
	run := func() {
		if err := s.Run(ctx, rc.in, index, band, rc.state, rc.logits); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Errorf("Run allocates %v times per frame, want 0", n)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	tp := hrnetLike(4)
	rc := newRunCase(t, tp, testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	radii := tp.bandRadii()
	index, band := tables(randomMasks(rand.New(rand.NewPCG(4, 4)), radii, testHeight, testWidth, 0.5, nil), radii, testHeight, testWidth)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx, rc.in, index, band, rc.state, rc.logits); !errors.Is(err, context.Canceled) {
		t.Errorf("Run on a cancelled context: %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background(), rc.in, index, band, rc.state, rc.logits); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

// TestRunRejectsBadArguments: wrong buffer sizes and malformed tables are
// errors naming what was wrong, never a write out of bounds.
func TestRunRejectsBadArguments(t *testing.T) {
	tp := hrnetLike(5)
	rc := newRunCase(t, tp, testHeight, testWidth)
	s, err := Load(rc.path, testHeight, testWidth, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	radii := tp.bandRadii()
	index, band := tables(randomMasks(rand.New(rand.NewPCG(5, 5)), radii, testHeight, testWidth, 0.5, nil), radii, testHeight, testWidth)
	with := func(m map[int][]int64, stride int, v []int64) map[int][]int64 {
		out := map[int][]int64{}
		for k, x := range m {
			out[k] = x
		}
		if v == nil {
			delete(out, stride)
		} else {
			out[stride] = v
		}
		return out
	}
	firstBand := band[8][0]
	for _, c := range []struct {
		name        string
		in          [][]float32
		index, band map[int][]int64
		state       [][]float32
		logits      []float32
		want        string
	}{
		{"inputs", rc.in[:1], index, band, rc.state, rc.logits, "1 inputs, want 2"},
		{"input size", [][]float32{rc.in[0], rc.in[0]}, index, band, rc.state, rc.logits, `input "x1" has 768 floats, want 256`},
		{"states", rc.in, index, band, rc.state[:2], rc.logits, "2 state outputs, want 3"},
		{"state size", rc.in, index, band, [][]float32{rc.state[0], rc.state[0], rc.state[2]}, rc.logits, "state output 1 has 768 floats, want 256"},
		{"logits", rc.in, index, band, rc.state, rc.logits[1:], "logits have 383 floats, want 384"},
		{"no index", rc.in, with(index, 16, nil), band, rc.state, rc.logits, "no index table for stride 16"},
		{"no band", rc.in, index, with(band, 4, nil), rc.state, rc.logits, "no band table for stride 4"},
		{"index range", rc.in, with(index, 16, []int64{8}), band, rc.state, rc.logits, "index:16[0] = 8, want ascending pixels in [0, 8)"},
		{"index negative", rc.in, with(index, 16, []int64{-1}), band, rc.state, rc.logits, "index:16[0] = -1, want ascending"},
		{"index order", rc.in, with(index, 8, []int64{index[8][0], index[8][0]}), band, rc.state, rc.logits,
			fmt.Sprintf("index:8[1] = %d, want ascending", index[8][0])},
		{"band order", rc.in, index, with(band, 8, []int64{5, 2}), rc.state, rc.logits, "band:8[1] = 2, want ascending"},
		{"overlap", rc.in, with(index, 8, []int64{firstBand}), band, rc.state, rc.logits,
			fmt.Sprintf("index:8[0] = %d is in band:8 too", firstBand)},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.Run(context.Background(), c.in, c.index, c.band, c.state, c.logits)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), rc.path) {
				t.Errorf("Run: %v, want the plan's path and %q", err, c.want)
			}
		})
	}
	// The stage still runs correctly after the errors.
	rc.check(t, s, randomMasks(rand.New(rand.NewPCG(6, 6)), radii, testHeight, testWidth, 0.5, nil))
}

// ---- the committed tiny-sparse bundle's plans ----

// readTestPlan reads a plan written by the exporter into a testPlan (values
// read from its weights file) for the reference.
func readTestPlan(t *testing.T, path string) *testPlan {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pj planJSON
	if err := json.Unmarshal(raw, &pj); err != nil {
		t.Fatal(err)
	}
	wraw, err := os.ReadFile(filepath.Join(filepath.Dir(path), pj.Weights))
	if err != nil {
		t.Fatal(err)
	}
	values := func(r *refJSON) []float32 {
		if r == nil {
			return nil
		}
		if r.Values != nil {
			v := make([]float32, len(r.Values))
			for i, x := range r.Values {
				v[i] = float32(x)
			}
			return v
		}
		n := 1
		for _, d := range r.Shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(wraw[*r.Offset+4*int64(i):]))
		}
		return v
	}
	tp := &testPlan{rng: rand.New(rand.NewPCG(11, 11)), tensors: pj.Tensors, inputs: pj.Inputs, state: pj.State, logits: pj.Logits}
	for _, oj := range pj.Ops {
		o := testOp{kind: oj.Op, in: oj.In, out: oj.Out, kernel: oj.Kernel, stride: oj.Stride, residual: oj.Residual,
			relu: oj.Relu, terms: oj.Terms, weight: values(oj.Weight), bias: values(oj.Bias)}
		if oj.BN != nil {
			o.bn = &testBN{gamma: values(oj.BN.Gamma), beta: values(oj.BN.Beta), mean: values(oj.BN.Mean),
				variance: values(oj.BN.Var), eps: oj.BN.Eps}
		}
		for _, tap := range oj.Taps {
			o.taps = append(o.taps, Tap{DY: int32(tap[0]), DX: int32(tap[1]), W: float32(tap[2])})
		}
		tp.ops = append(tp.ops, o)
	}
	return tp
}

// nestedMasks are the runtime's masks: mask4 at stride 4 (the exit
// resolution) and, at each coarser stride S, pixel (i, j) taking
// mask4[r·i, r·j] with r = S/4 (nearest, docs/bundle.md).
func nestedMasks(mask4 []bool, height, width int, strides []int) masks {
	w4 := width / 4
	m := masks{}
	for _, s := range strides {
		r, h, w := s/4, height/s, width/s
		mk := make([]bool, h*w)
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				mk[i*w+j] = mask4[(r*i)*w4+r*j]
			}
		}
		m[s] = mk
	}
	return m
}

// TestBundlePlans runs the exporter's plans of the committed sparse bundles
// (testdata's tiny-sparse, the shipped demos) against the reference of their
// semantics, with each bundle's band radii and nested masks as the runtime
// builds them. (Against the stages' masked ONNX graphs they are checked
// through engines/ort.)
func TestBundlePlans(t *testing.T) {
	for _, dir := range []string{"testdata/bundles/tiny-sparse", "models/zoo/fashion-seg-adpc", "models/zoo/fashion-pose-adpc"} {
		t.Run(filepath.Base(dir), func(t *testing.T) { checkBundlePlans(t, filepath.Join("..", "..", dir)) })
	}
}

// nativeStage is a bundle stage with a native plan.
type nativeStage struct {
	name  string
	plan  string      // the plan's path
	radii map[int]int // sparse.bands
}

// bundleStages reads a bundle's input size and its stages with a native
// plan (a few fields of bundle.json; the bundle package owns the rest).
func bundleStages(tb testing.TB, dir string) (height, width int, stages []nativeStage) {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var manifest struct {
		Input struct {
			Shape []int `json:"shape"`
		} `json:"input"`
		Stages []struct {
			Name   string `json:"name"`
			Sparse *struct {
				Bands  map[string]int `json:"bands"`
				Native *struct {
					File string `json:"file"`
				} `json:"native"`
			} `json:"sparse"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		tb.Fatal(err)
	}
	for _, st := range manifest.Stages {
		if st.Sparse == nil || st.Sparse.Native == nil {
			continue
		}
		ns := nativeStage{name: st.Name, plan: filepath.Join(dir, st.Sparse.Native.File), radii: map[int]int{}}
		for k, r := range st.Sparse.Bands {
			s, err := strconv.Atoi(k)
			if err != nil {
				tb.Fatal(err)
			}
			ns.radii[s] = r
		}
		stages = append(stages, ns)
	}
	return manifest.Input.Shape[2], manifest.Input.Shape[3], stages
}

// checkBundlePlans loads a bundle's plans into one Shared, as an engine does,
// and runs them in turn, each mask case through every stage, so that the
// stages run on buffers that the others use too and that grew after the
// first stages were loaded.
func checkBundlePlans(t *testing.T, dir string) {
	height, width, stages := bundleStages(t, dir)
	if len(stages) != 3 {
		t.Errorf("%s: %d stages with a native plan, want 3", dir, len(stages))
	}
	sh, err := NewShared(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	sh.pool.macGrain, sh.pool.elementGrain = 1, 1
	type loaded struct {
		s       *Stage
		rc      *runCase
		strides []int
	}
	var runs []loaded
	var sum, largest int64
	for _, st := range stages {
		tp := readTestPlan(t, st.plan)
		s, err := sh.Load(st.plan, height, width)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sum, largest = sum+s.bytes, max(largest, s.bytes)
		strides := slices.Sorted(maps.Keys(st.radii))
		if got := s.Strides(); !slices.Equal(got, strides) {
			t.Fatalf("%s: Strides() = %v, want the bundle's band strides %v", st.name, got, strides)
		}
		rc := &runCase{tp: tp, height: height, width: width}
		for _, name := range tp.inputs {
			rc.in = append(rc.in, tp.values(rc.size(name), -1, 2))
		}
		for _, name := range tp.state {
			rc.state = append(rc.state, make([]float32, rc.size(name)))
		}
		rc.logits = make([]float32, rc.size(tp.logits))
		runs = append(runs, loaded{s, rc, strides})
	}
	if got := sh.Bytes(); got < largest || got >= sum {
		t.Errorf("shared buffers hold %d bytes, want from the largest stage's %d to less than the stages' sum %d", got, largest, sum)
	}
	rng := rand.New(rand.NewPCG(12, 12))
	n4 := (height / 4) * (width / 4)
	for _, c := range []struct {
		name string
		p    float64
	}{{"half", 0.5}, {"sparse", 0.1}, {"all", 1}} {
		mask4 := make([]bool, n4)
		for i := range mask4 {
			mask4[i] = rng.Float64() < c.p
		}
		for k, r := range runs {
			t.Run(c.name+"/"+stages[k].name, func(t *testing.T) {
				r.rc.checkTables(t, r.s, nestedMasks(mask4, height, width, r.strides), stages[k].radii)
			})
		}
	}
}
