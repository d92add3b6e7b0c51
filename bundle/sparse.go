package bundle

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Sources of a sparse stage's index tables: "index:S" and "band:S", S an
// output stride in input pixels (docs/bundle.md, "sparse" mode).
const (
	SourceIndexPrefix = "index:"
	SourceBandPrefix  = "band:"
)

// MaxBandRadius bounds a band's Chebyshev radius: the RBF fill it serves is a
// 7×7 window.
const MaxBandRadius = 3

// Sparse describes a sparse stage's exact paths besides its sparse graph
// (the stage's file).
type Sparse struct {
	// Bands maps a stride (decimal, input pixels) to the Chebyshev radius
	// of the frozen pixels the stage fills there (the "band:S" table).
	Bands map[string]int `json:"bands"`
	// Masked is the reference graph: the same computation, dense with the
	// mask (today's "masked" mode).
	Masked MaskedGraph `json:"masked"`
	// Dense, when present, is the plain dense graph, exact when the
	// stage's mask is all ones.
	Dense *DenseGraph `json:"dense,omitempty"`
	// Native, when present, is the stage's plan for the runtime's own CPU
	// kernels (engines/native): the sparse graph's computation, read
	// from the stage's weights file.
	Native *NativePlan `json:"native,omitempty"`
}

// NativePlan names a sparse stage's plan file (docs/bundle.md, "sparse" mode).
type NativePlan struct {
	File string `json:"file"`
}

// MaskedGraph is a graph fed the stage's mask on its input Mask.
type MaskedGraph struct {
	File string `json:"file"`
	Mask string `json:"mask"`
}

// DenseGraph is a graph fed only the stage's state inputs.
type DenseGraph struct {
	File string `json:"file"`
}

// TableKind is what an index table lists.
type TableKind int

// Table kinds.
const (
	// TableIndex lists the computed pixels.
	TableIndex TableKind = iota
	// TableBand lists the frozen pixels within the band radius of a
	// computed one.
	TableBand
)

// Table is one index-table input of a sparse stage.
type Table struct {
	// Input is the graph input's name.
	Input string
	Kind  TableKind
	// Stride is the table's resolution in input pixels; its map is
	// (H/Stride)×(W/Stride).
	Stride int
	// Radius is the band's Chebyshev radius (TableBand only).
	Radius int
}

// Tables lists a sparse stage's index-table inputs ordered by input name;
// nil for other modes. The manifest must be valid.
func (s Stage) Tables() []Table {
	if s.Mode != ModeSparse {
		return nil
	}
	var out []Table
	for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
		kind, stride, ok := tableSource(s.Inputs[name])
		if !ok {
			continue
		}
		t := Table{Input: name, Kind: kind, Stride: stride}
		if kind == TableBand && s.Sparse != nil {
			t.Radius = s.Sparse.Bands[strconv.Itoa(stride)]
		}
		out = append(out, t)
	}
	return out
}

// tableSource parses "index:S" or "band:S"; ok is false for other sources
// and for a stride that is not a positive decimal integer.
func tableSource(src string) (kind TableKind, stride int, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(src, SourceIndexPrefix):
		kind, rest = TableIndex, strings.TrimPrefix(src, SourceIndexPrefix)
	case strings.HasPrefix(src, SourceBandPrefix):
		kind, rest = TableBand, strings.TrimPrefix(src, SourceBandPrefix)
	default:
		return 0, 0, false
	}
	stride, err := strconv.Atoi(rest)
	if err != nil || stride <= 0 || strconv.Itoa(stride) != rest {
		return kind, 0, false
	}
	return kind, stride, true
}

// isTableSource says whether src names an index table, well formed or not.
func isTableSource(src string) bool {
	return strings.HasPrefix(src, SourceIndexPrefix) || strings.HasPrefix(src, SourceBandPrefix)
}

// MaskedPath is the path of sparse stage i's reference masked graph.
func (b *Bundle) MaskedPath(i int) string {
	return filepath.Join(b.Dir, b.Stages[i].Sparse.Masked.File)
}

// PlainDensePath is the path of sparse stage i's plain dense graph; empty
// when the stage has none.
func (b *Bundle) PlainDensePath(i int) string {
	if d := b.Stages[i].Sparse.Dense; d != nil {
		return filepath.Join(b.Dir, d.File)
	}
	return ""
}

// NativePlanPath is the path of sparse stage i's native plan; empty when the
// stage has none.
func (b *Bundle) NativePlanPath(i int) string {
	if sp := b.Stages[i].Sparse; sp != nil && sp.Native != nil {
		return filepath.Join(b.Dir, sp.Native.File)
	}
	return ""
}

// sparseFiles are the extra graph files of stage s with their JSON fields.
func (s Stage) sparseFiles(i int) (files, fields []string) {
	if s.Sparse == nil {
		return nil, nil
	}
	at := fmt.Sprintf("stages[%d].sparse", i)
	files = append(files, s.Sparse.Masked.File)
	fields = append(fields, at+".masked.file")
	if s.Sparse.Dense != nil {
		files = append(files, s.Sparse.Dense.File)
		fields = append(fields, at+".dense.file")
	}
	if s.Sparse.Native != nil {
		files = append(files, s.Sparse.Native.File)
		fields = append(fields, at+".native.file")
	}
	return files, fields
}

// validateSparse checks a sparse stage's sparse object and table inputs (and
// that no other stage has a sparse object).
func (m *Manifest) validateSparse(v *validator, i int, s Stage, files map[string]bool) {
	at := fmt.Sprintf("stages[%d].sparse", i)
	if !v.modeObject(at, ModeSparse, s, s.Sparse != nil, "bands, masked and dense") {
		return
	}
	sp := s.Sparse
	v.maskedGraph(at+".masked", sp.Masked.File, sp.Masked.Mask, "sparse", s, files)
	if sp.Dense != nil {
		v.graphFile(at+".dense.file", sp.Dense.File, files)
	}
	if sp.Native != nil {
		v.graphFile(at+".native.file", sp.Native.File, files)
	}
	// Every stride with a masked convolution has one index and one band
	// table and a band radius.
	index := map[int]bool{}
	band := map[int]bool{}
	for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
		src := s.Inputs[name]
		if !isTableSource(src) {
			continue
		}
		kind, stride, ok := tableSource(src)
		f := fmt.Sprintf("stages[%d].inputs.%s", i, name)
		if !ok {
			v.fail(f, "got %q, want \"index:S\" or \"band:S\" with S a positive stride in input pixels", src)
			continue
		}
		m.validateTableStride(v, f, stride)
		seen := index
		if kind == TableBand {
			seen = band
		}
		if seen[stride] {
			v.fail(f, "a second %q table", src)
		}
		seen[stride] = true
	}
	inputs := fmt.Sprintf("stages[%d].inputs", i)
	if len(index) == 0 {
		v.fail(inputs, "sparse stage %q has no \"index:S\" input", s.Name)
	}
	for _, stride := range slices.Sorted(maps.Keys(index)) {
		if !band[stride] {
			v.fail(inputs, "\"index:%d\" has no \"band:%d\" table at its stride", stride, stride)
		}
	}
	for _, stride := range slices.Sorted(maps.Keys(band)) {
		if !index[stride] {
			v.fail(inputs, "\"band:%d\" has no \"index:%d\" table at its stride", stride, stride)
		}
		if _, ok := sp.Bands[strconv.Itoa(stride)]; !ok {
			v.fail(at+".bands", "no radius for \"band:%d\"", stride)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(sp.Bands)) {
		f := at + ".bands." + key
		stride, err := strconv.Atoi(key)
		switch {
		case err != nil || stride <= 0 || strconv.Itoa(stride) != key:
			v.fail(f, "key %q is not a positive stride", key)
		case !band[stride]:
			v.fail(f, "no input is fed from \"band:%d\"", stride)
		}
		if r := sp.Bands[key]; r < 0 || r > MaxBandRadius {
			v.fail(f, "radius %d, want 0..%d (the fill window is 7×7)", r, MaxBandRadius)
		}
	}
}

// validateTableStride checks a table's stride: a power of two, a multiple
// of the output stride, dividing the input's height and width.
func (m *Manifest) validateTableStride(v *validator, field string, stride int) {
	if stride&(stride-1) != 0 {
		v.fail(field, "stride %d is not a power of two", stride)
	}
	if m.OutputStride > 0 && stride%m.OutputStride != 0 {
		v.fail(field, "stride %d is not a multiple of output_stride %d", stride, m.OutputStride)
	}
	if len(m.Input.Shape) == 4 && (m.Input.Shape[2]%int64(stride) != 0 || m.Input.Shape[3]%int64(stride) != 0) {
		v.fail(field, "stride %d does not divide the %dx%d input", stride, m.Input.Shape[2], m.Input.Shape[3])
	}
}

// CheckSparseGraphs checks sparse stage i's graphs against each other: its
// sparse graph (g) takes every table as int64 [N] with N dynamic; the masked
// graph takes the same state inputs plus the mask (float32 [1, 1, h, w]);
// the dense graph, when present, the state inputs only; all three have the
// same state and logits outputs. masked and dense are the other graphs'
// information (dense is ignored when the stage has no dense graph).
func (b *Bundle) CheckSparseGraphs(i int, g, masked, dense GraphInfo) error {
	s := b.Stages[i]
	for _, in := range g.Inputs {
		if _, _, ok := tableSource(s.Inputs[in.Name]); !ok {
			continue
		}
		if in.Type != "int64" || len(in.Shape) != 1 || in.Shape[0] != -1 {
			return &FieldError{File: b.StagePath(i), Msg: fmt.Sprintf("stage %q: input %q (from %s) is %s %v, want int64 [N] with N dynamic",
				s.Name, in.Name, s.Inputs[in.Name], in.Type, in.Shape)}
		}
	}
	h, w := b.OutputSize()
	state := map[string]TensorInfo{}
	for _, in := range g.Inputs {
		if strings.HasPrefix(s.Inputs[in.Name], statePrefix) {
			state[in.Name] = in
		}
	}
	withMask := maps.Clone(state)
	withMask[s.Sparse.Masked.Mask] = TensorInfo{Type: "float32", Shape: []int64{1, 1, int64(h), int64(w)}}
	if err := sameGraph(b.MaskedPath(i), fmt.Sprintf("masked graph of stage %q", s.Name), withMask, g, masked, s); err != nil {
		return err
	}
	if s.Sparse.Dense != nil {
		return sameGraph(b.PlainDensePath(i), fmt.Sprintf("dense graph of stage %q", s.Name), state, g, dense, s)
	}
	return nil
}

// sameGraph checks that other takes exactly the inputs want and has ref's
// state and logits outputs.
func sameGraph(path, what string, want map[string]TensorInfo, ref, other GraphInfo, s Stage) error {
	fail := func(format string, args ...any) error {
		return &FieldError{File: path, Msg: what + ": " + fmt.Sprintf(format, args...)}
	}
	if len(other.Inputs) != len(want) {
		return fail("has %d inputs, want %d (%v)", len(other.Inputs), len(want), slices.Sorted(maps.Keys(want)))
	}
	for _, in := range other.Inputs {
		exp, ok := want[in.Name]
		if !ok {
			return fail("unexpected input %q, want %v", in.Name, slices.Sorted(maps.Keys(want)))
		}
		if err := sameTensor(in, exp); err != nil {
			return fail("input %q: %v", in.Name, err)
		}
	}
	outs := map[string]TensorInfo{}
	for _, o := range other.Outputs {
		outs[o.Name] = o
	}
	for _, o := range ref.Outputs {
		if o.Name != s.Logits && !slices.Contains(s.State, o.Name) {
			continue
		}
		got, ok := outs[o.Name]
		if !ok {
			return fail("has no output %q", o.Name)
		}
		if err := sameTensor(got, o); err != nil {
			return fail("output %q: %v", o.Name, err)
		}
	}
	return nil
}

// graphFile checks the name of one graph file of a stage (its file or one
// of its extra graphs): present, inside the bundle and used by no other
// graph (files holds those seen).
func (v *validator) graphFile(field, file string, files map[string]bool) {
	switch {
	case file == "":
		v.fail(field, "missing")
	case !filepath.IsLocal(file):
		v.fail(field, "%q must be a relative path inside the bundle directory", file)
	case files[file]:
		v.fail(field, "%q is already used by another graph", file)
	}
	files[file] = true
}

// modeObject checks that stage s carries the object of a mode (at names it,
// has says whether s has one) exactly when s is of that mode; need lists
// what the object holds. It reports whether there is an object to check.
func (v *validator) modeObject(at, mode string, s Stage, has bool, need string) bool {
	if s.Mode != mode {
		if has {
			v.fail(at, "only a %s stage has a %s object", mode, mode)
		}
		return false
	}
	if !has {
		v.fail(at, "a %s stage needs %s", mode, need)
		return false
	}
	return true
}

// maskedGraph checks one graph of stage s that takes the mask (at names its
// object, graph names it in messages): its file, and a mask input that is
// named and is not also one of the stage's inputs.
func (v *validator) maskedGraph(at, file, mask, graph string, s Stage, files map[string]bool) {
	v.graphFile(at+".file", file, files)
	if mask == "" {
		v.fail(at+".mask", "missing")
	} else if _, clash := s.Inputs[mask]; clash {
		v.fail(at+".mask", "%q is also an input of the %s graph", mask, graph)
	}
}
