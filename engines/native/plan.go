//go:build cgo

package native

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// PlanFormat is the value of a plan's "format" field this package reads.
const PlanFormat = "adpc-plan/1"

// Bounds on a plan's numbers, so that a plan cannot make Load allocate without
// limit or overflow an index.
const (
	// maxChannels bounds a tensor's channel count.
	maxChannels = 1 << 16
	// maxStride bounds a tensor's stride (input pixels per feature pixel).
	maxStride = 1 << 10
	// maxFillRadius bounds a fill tap's offset: the RBF fill is a 7×7 window.
	maxFillRadius = 3
	// maxElements bounds a map's pixel count times its channels (an int32 index).
	maxElements = 1 << 31
)

// planJSON is a plan file as written (docs/bundle.md, "native plan").
type planJSON struct {
	Format  string                `json:"format"`
	Weights string                `json:"weights"`
	Inputs  []string              `json:"inputs"`
	State   []string              `json:"state"`
	Logits  string                `json:"logits"`
	Tensors map[string]tensorJSON `json:"tensors"`
	Ops     []opJSON              `json:"ops"`
}

type tensorJSON struct {
	Channels int `json:"channels"`
	Stride   int `json:"stride"`
}

// opJSON is the union of the ops' fields; which ones an op uses depends on Op.
type opJSON struct {
	Op       string      `json:"op"`
	In       string      `json:"in"`
	Out      string      `json:"out"`
	Kernel   int         `json:"kernel"`
	Stride   int         `json:"stride"`
	Weight   *refJSON    `json:"weight"`
	Bias     *refJSON    `json:"bias"`
	BN       *bnJSON     `json:"bn"`
	Taps     [][]float64 `json:"taps"`
	Residual string      `json:"residual"`
	Relu     bool        `json:"relu"`
	Terms    []termJSON  `json:"terms"`
}

type refJSON struct {
	Offset *int64    `json:"offset"`
	Values []float64 `json:"values"`
	Shape  []int     `json:"shape"`
}

type bnJSON struct {
	Gamma *refJSON `json:"gamma"`
	Beta  *refJSON `json:"beta"`
	Mean  *refJSON `json:"mean"`
	Var   *refJSON `json:"var"`
	Eps   float64  `json:"eps"`
}

type termJSON struct {
	In       string `json:"in"`
	Upsample int    `json:"upsample"`
}

// Op kinds.
const (
	opConv    = "conv"
	opSum     = "sum"
	opConcat  = "concat"
	opAvgPool = "avgpool"
)

// plan is a validated plan for one input size. Tensors are numbered in the
// order the plan defines them: the inputs first, then each op's output.
type plan struct {
	path    string // the plan file, for errors
	weights string // the weights file's path
	height  int
	width   int
	tensors []tensor
	inputs  []int // tensor ids of the state inputs, in plan order
	state   []int // tensor ids of the state outputs, in plan order
	logits  int
	ops     []op
}

// tensor is one feature map of the plan: [height/stride, width/stride, channels].
type tensor struct {
	name     string
	channels int
	stride   int
}

// op is one validated operation; fields not used by its kind are zero.
type op struct {
	kind string
	in   int // conv, avgpool
	out  int
	// conv
	kernel   int
	stride   int
	weight   ref
	bias     *ref
	bn       *bn
	taps     []Tap
	residual int  // tensor id, -1 for none
	relu     bool // conv, sum
	// sum, concat
	terms []term
}

// ref locates a weight: count floats at byte offset of the weights file, or
// inline values.
type ref struct {
	field  string // the JSON path, for errors
	offset int64
	count  int
	values []float32 // inline; nil when in the file
}

type bn struct {
	gamma, beta, mean, variance ref
	eps                         float64
}

type term struct {
	in       int
	upsample int
}

// planError is what was wrong with a plan: the file, the field (a JSON path
// such as ops[3].weight.shape) and what was expected.
func planError(file, field, format string, args ...any) error {
	if field == "" {
		return fmt.Errorf("native plan %s: %s", file, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("native plan %s: %s: %s", file, field, fmt.Sprintf(format, args...))
}

// readPlan reads and validates the plan at path for an input of height ×
// width, including that every weight reference lies inside the weights file.
// The weights' values are checked when they are read (weightsFile.read).
func readPlan(path string, height, width int) (*plan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("native plan: %w", err)
	}
	if height <= 0 || width <= 0 {
		return nil, planError(path, "", "input size %dx%d, want positive", height, width)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var pj planJSON
	if err := dec.Decode(&pj); err != nil {
		return nil, planError(path, "", "not a valid plan: %v", err)
	}
	if dec.More() {
		return nil, planError(path, "", "trailing data after the JSON object")
	}
	v := &validator{file: path, height: height, width: width, ids: map[string]int{}}
	p := v.plan(&pj)
	if v.err != nil {
		return nil, v.err
	}
	p.path = path
	p.weights = filepath.Join(filepath.Dir(path), pj.Weights)
	fi, err := os.Stat(p.weights)
	if err != nil {
		return nil, planError(path, "weights", "%v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, planError(path, "weights", "%s is not a regular file", p.weights)
	}
	if err := p.checkRefs(fi.Size()); err != nil {
		return nil, err
	}
	return p, nil
}

// validator checks a decoded plan and collects the first rule it breaks.
type validator struct {
	file          string
	height, width int
	err           error
	ids           map[string]int // tensor name → id, once defined
	declared      map[string]tensorJSON
	p             *plan
}

func (v *validator) fail(field, format string, args ...any) {
	if v.err == nil {
		v.err = planError(v.file, field, format, args...)
	}
}

func (v *validator) plan(pj *planJSON) *plan {
	if pj.Format != PlanFormat {
		v.fail("format", "got %q, want %q", pj.Format, PlanFormat)
		return nil
	}
	if pj.Weights == "" || filepath.Base(pj.Weights) != pj.Weights || pj.Weights == "." || pj.Weights == ".." {
		v.fail("weights", "got %q, want a file name next to the plan", pj.Weights)
	}
	v.declared = pj.Tensors
	for _, name := range slices.Sorted(maps.Keys(pj.Tensors)) {
		t := pj.Tensors[name]
		at := "tensors." + name
		switch {
		case name == "":
			v.fail("tensors", "a tensor with an empty name")
		case t.Channels <= 0 || t.Channels > maxChannels:
			v.fail(at+".channels", "got %d, want 1..%d", t.Channels, maxChannels)
		case t.Stride <= 0 || t.Stride > maxStride || t.Stride&(t.Stride-1) != 0:
			v.fail(at+".stride", "got %d, want a power of two up to %d", t.Stride, maxStride)
		case v.height%t.Stride != 0 || v.width%t.Stride != 0:
			v.fail(at+".stride", "%d does not divide the input size %dx%d", t.Stride, v.height, v.width)
		case int64(v.height/t.Stride)*int64(v.width/t.Stride)*int64(t.Channels) >= maxElements:
			v.fail(at, "%dx%dx%d is too large", v.height/t.Stride, v.width/t.Stride, t.Channels)
		}
	}
	if v.err != nil {
		return nil
	}
	v.p = &plan{height: v.height, width: v.width, logits: -1}
	if len(pj.Inputs) == 0 {
		v.fail("inputs", "empty, want the stage's state inputs")
	}
	for i, name := range pj.Inputs {
		v.p.inputs = append(v.p.inputs, v.define(fmt.Sprintf("inputs[%d]", i), name))
	}
	if len(pj.Ops) == 0 {
		v.fail("ops", "empty")
	}
	for i := range pj.Ops {
		v.op(i, &pj.Ops[i])
	}
	for _, name := range slices.Sorted(maps.Keys(pj.Tensors)) {
		if _, ok := v.ids[name]; !ok {
			v.fail("tensors."+name, "declared but neither an input nor written by an op")
		}
	}
	seen := map[int]bool{}
	for i, name := range pj.State {
		id := v.use(fmt.Sprintf("state[%d]", i), name)
		if id >= 0 && seen[id] {
			v.fail(fmt.Sprintf("state[%d]", i), "%q listed twice", name)
		}
		seen[id] = true
		v.p.state = append(v.p.state, id)
	}
	v.p.logits = v.use("logits", pj.Logits)
	return v.p
}

// define gives a new tensor its id; field is where the plan defines it.
func (v *validator) define(field, name string) int {
	t, ok := v.declared[name]
	if !ok {
		v.fail(field, "tensor %q is not declared in tensors", name)
		return -1
	}
	if _, ok := v.ids[name]; ok {
		v.fail(field, "tensor %q is written a second time (each tensor is written once)", name)
		return -1
	}
	id := len(v.p.tensors)
	v.ids[name] = id
	v.p.tensors = append(v.p.tensors, tensor{name: name, channels: t.Channels, stride: t.Stride})
	return id
}

// use returns the id of a tensor read at field, which must be defined already.
func (v *validator) use(field, name string) int {
	id, ok := v.ids[name]
	if !ok {
		if _, declared := v.declared[name]; declared {
			v.fail(field, "tensor %q is read before an op writes it", name)
		} else {
			v.fail(field, "tensor %q is not declared in tensors", name)
		}
		return -1
	}
	return id
}

func (v *validator) op(i int, oj *opJSON) {
	at := fmt.Sprintf("ops[%d]", i)
	o := op{kind: oj.Op, in: -1, residual: -1, relu: oj.Relu}
	switch oj.Op {
	case opConv:
		o.in = v.use(at+".in", oj.In)
	case opAvgPool:
		o.in = v.use(at+".in", oj.In)
	case opSum, opConcat:
		if len(oj.Terms) == 0 {
			v.fail(at+".terms", "empty")
		}
		for k, tj := range oj.Terms {
			o.terms = append(o.terms, term{in: v.use(fmt.Sprintf("%s.terms[%d].in", at, k), tj.In), upsample: tj.Upsample})
		}
	default:
		v.fail(at+".op", "got %q, want conv, sum, concat or avgpool", oj.Op)
		return
	}
	if oj.Op == opConv && oj.Residual != "" {
		o.residual = v.use(at+".residual", oj.Residual)
	}
	o.out = v.define(at+".out", oj.Out)
	if v.err != nil {
		return
	}
	out := v.p.tensors[o.out]
	switch oj.Op {
	case opConv:
		v.conv(at, oj, &o)
	case opAvgPool:
		in := v.p.tensors[o.in]
		if out.stride != 2*in.stride {
			v.fail(at+".out", "stride %d, want twice the input's %d (2x2 pooling)", out.stride, in.stride)
		}
		if out.channels != in.channels {
			v.fail(at+".out", "%d channels, want the input's %d", out.channels, in.channels)
		}
	case opSum, opConcat:
		channels := 0
		for k, t := range o.terms {
			in := v.p.tensors[t.in]
			f := fmt.Sprintf("%s.terms[%d]", at, k)
			switch t.upsample {
			case 1, 2, 4, 8:
			default:
				v.fail(f+".upsample", "got %d, want 1, 2, 4 or 8", t.upsample)
				continue
			}
			if in.stride != out.stride*t.upsample {
				v.fail(f+".in", "tensor %q has stride %d, want %d (the output's %d times upsample %d)",
					in.name, in.stride, out.stride*t.upsample, out.stride, t.upsample)
			}
			if oj.Op == opSum && in.channels != out.channels {
				v.fail(f+".in", "tensor %q has %d channels, want the output's %d", in.name, in.channels, out.channels)
			}
			channels += in.channels
		}
		if oj.Op == opConcat && channels != out.channels {
			v.fail(at+".out", "%d channels, want the terms' sum %d", out.channels, channels)
		}
	}
	v.p.ops = append(v.p.ops, o)
}

func (v *validator) conv(at string, oj *opJSON, o *op) {
	in, out := v.p.tensors[o.in], v.p.tensors[o.out]
	if oj.Kernel != 1 && oj.Kernel != 3 {
		v.fail(at+".kernel", "got %d, want 1 or 3", oj.Kernel)
		return
	}
	if oj.Stride != 1 && oj.Stride != 2 {
		v.fail(at+".stride", "got %d, want 1 or 2", oj.Stride)
		return
	}
	o.kernel, o.stride = oj.Kernel, oj.Stride
	if out.stride != in.stride*o.stride {
		v.fail(at+".out", "tensor %q has stride %d, want the input's %d times %d", out.name, out.stride, in.stride, o.stride)
	}
	o.weight = v.ref(at+".weight", oj.Weight, out.channels, in.channels, o.kernel, o.kernel)
	if oj.Bias != nil {
		b := v.ref(at+".bias", oj.Bias, out.channels)
		o.bias = &b
	}
	if oj.BN != nil {
		o.bn = &bn{
			gamma:    v.ref(at+".bn.gamma", oj.BN.Gamma, out.channels),
			beta:     v.ref(at+".bn.beta", oj.BN.Beta, out.channels),
			mean:     v.ref(at+".bn.mean", oj.BN.Mean, out.channels),
			variance: v.ref(at+".bn.var", oj.BN.Var, out.channels),
			eps:      oj.BN.Eps,
		}
		if !(oj.BN.Eps > 0) || math.IsInf(oj.BN.Eps, 0) {
			v.fail(at+".bn.eps", "got %v, want a positive number", oj.BN.Eps)
		}
	}
	for k, t := range oj.Taps {
		f := fmt.Sprintf("%s.taps[%d]", at, k)
		if len(t) != 3 {
			v.fail(f, "%d numbers, want [dy, dx, w]", len(t))
			return
		}
		dy, dx, w := t[0], t[1], t[2]
		if dy != math.Trunc(dy) || dx != math.Trunc(dx) || math.Abs(dy) > maxFillRadius || math.Abs(dx) > maxFillRadius {
			v.fail(f, "offset (%v, %v), want integers within ±%d", dy, dx, maxFillRadius)
			return
		}
		if dy == 0 && dx == 0 {
			v.fail(f, "offset (0, 0): the fill never reads the pixel it fills")
			return
		}
		if !finite(w) || math.Abs(w) > math.MaxFloat32 {
			v.fail(f, "weight %v, want a finite float32", w)
			return
		}
		o.taps = append(o.taps, Tap{DY: int32(dy), DX: int32(dx), W: float32(w)})
	}
	if o.residual >= 0 {
		r := v.p.tensors[o.residual]
		if r.channels != out.channels || r.stride != out.stride {
			v.fail(at+".residual", "tensor %q is %d channels at stride %d, want the output's %d at stride %d",
				r.name, r.channels, r.stride, out.channels, out.stride)
		}
	}
}

// ref checks a weight reference's shape against want and returns it.
func (v *validator) ref(field string, rj *refJSON, want ...int) ref {
	r := ref{field: field, offset: -1}
	if rj == nil {
		v.fail(field, "missing")
		return r
	}
	if !slices.Equal(rj.Shape, want) {
		v.fail(field+".shape", "got %v, want %v", rj.Shape, want)
		return r
	}
	r.count = 1
	for _, d := range want {
		r.count *= d
	}
	switch {
	case rj.Offset != nil && rj.Values != nil:
		v.fail(field, "both offset and values, want one")
	case rj.Offset != nil:
		r.offset = *rj.Offset
		if r.offset < 0 || r.offset%4 != 0 {
			v.fail(field+".offset", "got %d, want a non-negative multiple of 4", r.offset)
		}
	case rj.Values != nil:
		if len(rj.Values) != r.count {
			v.fail(field+".values", "%d values, want %d for shape %v", len(rj.Values), r.count, want)
			return r
		}
		r.values = make([]float32, r.count)
		for k, x := range rj.Values {
			if !finite(x) || math.Abs(x) > math.MaxFloat32 {
				v.fail(fmt.Sprintf("%s.values[%d]", field, k), "got %v, want a finite float32", x)
				return r
			}
			r.values[k] = float32(x)
		}
	default:
		v.fail(field, "neither offset nor values")
	}
	return r
}

// refs lists every weight reference of the plan.
func (p *plan) refs() []*ref {
	var out []*ref
	for i := range p.ops {
		o := &p.ops[i]
		if o.kind != opConv {
			continue
		}
		out = append(out, &o.weight)
		if o.bias != nil {
			out = append(out, o.bias)
		}
		if o.bn != nil {
			out = append(out, &o.bn.gamma, &o.bn.beta, &o.bn.mean, &o.bn.variance)
		}
	}
	return out
}

// checkRefs checks that every reference into the weights file lies inside its
// size bytes.
func (p *plan) checkRefs(size int64) error {
	for _, r := range p.refs() {
		if n := 4 * int64(r.count); r.values == nil && (n > size || r.offset > size-n) {
			return planError(p.path, r.field+".offset", "bytes %d..%d lie outside %s (%d bytes)",
				r.offset, r.offset+4*int64(r.count), filepath.Base(p.weights), size)
		}
	}
	return nil
}

// weightsFile reads a plan's weights, one reference at a time, into buffers
// it reuses, so that Load holds at most one raw tensor besides what it packs.
type weightsFile struct {
	p   *plan
	f   *os.File
	raw []byte
	buf []float32
}

func openWeights(p *plan) (*weightsFile, error) {
	f, err := os.Open(p.weights)
	if err != nil {
		return nil, planError(p.path, "weights", "%v", err)
	}
	return &weightsFile{p: p, f: f}, nil
}

func (w *weightsFile) Close() error { return w.f.Close() }

// read returns the values of r (float32 little-endian), valid until the next
// read; a value that is not finite is an error naming r's field.
func (w *weightsFile) read(r *ref) ([]float32, error) {
	if r.values != nil {
		return r.values, nil
	}
	n := 4 * r.count
	if cap(w.raw) < n {
		w.raw = make([]byte, n)
		w.buf = make([]float32, r.count)
	}
	raw, out := w.raw[:n], w.buf[:r.count]
	if _, err := w.f.ReadAt(raw, r.offset); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, planError(w.p.path, r.field, "reading %s: %v", filepath.Base(w.p.weights), err)
	}
	for k := range out {
		x := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, planError(w.p.path, r.field, "value %d is %v, want finite", k, x)
		}
		out[k] = x
	}
	return out, nil
}

// readCopy is read into a new slice the caller keeps.
func (w *weightsFile) readCopy(r *ref) ([]float32, error) {
	v, err := w.read(r)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v), nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
