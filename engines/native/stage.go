//go:build cgo

package native

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Stage is one sparse stage loaded from its plan: packed weights, the pixel
// classes per stride, its tensors' maps over buffers of its Shared and the
// Shared's workers.
//
// A Stage runs one frame at a time: Run is not safe for concurrent use, nor
// with Run of another stage of the same Shared. Close releases it; it is
// unusable afterwards.
type Stage struct {
	path     string
	shared   *Shared
	own      bool // the Shared is the stage's own (Load), closed with it
	inputs   []string
	strides  []int
	inIDs    []int
	stateIDs []int
	logitsID int
	grids    []*grid // per stride, ascending
	steps    []step  // per op, in order
	inJob    *copyIn
	outJob   *copyOut
	closed   bool

	// maps holds every tensor's map (by id), then the concat outputs' channel
	// views; the steps point into it. bind points the maps at the Shared's
	// buffers: tensor id at buffer bufOf[id], a view at its tensor's data
	// from an offset.
	maps  []Map
	bufOf []int
	views []concatView
	bytes int64  // this stage's buffer memory, alone
	gen   uint64 // the Shared's buffer generation maps are bound to

	// Run's buffers, for the copy jobs; nil between runs.
	in     [][]float32
	state  [][]float32
	logits []float32
}

// concatView is a channel slice of a concat's output map.
type concatView struct {
	at, tensor, offset int
}

// grid is one stride's pixel classes and, during Run, its tables.
type grid struct {
	stride int
	class  []uint8 // Far, Band or Computed per pixel
	index  []int64 // computed pixels, ascending
	band   []int64 // band pixels, ascending
}

// Load reads and validates the plan at planPath (and its weights file) for an
// input of height × width pixels, packs the weights and allocates every
// buffer; threads is the number of goroutines Run splits each operation
// across (the caller's included). The stage has its own buffers and workers;
// stages that run one after another can share them (Shared.Load).
func Load(planPath string, height, width, threads int) (*Stage, error) {
	sh, err := NewShared(threads)
	if err != nil {
		return nil, fmt.Errorf("native plan %s: %w", planPath, err)
	}
	s, err := sh.Load(planPath, height, width)
	if err != nil {
		sh.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// load is Shared.Load.
func load(sh *Shared, planPath string, height, width int) (*Stage, error) {
	p, err := readPlan(planPath, height, width)
	if err != nil {
		return nil, err
	}
	w, err := openWeights(p)
	if err != nil {
		return nil, err
	}
	defer w.Close()

	s := &Stage{path: planPath, shared: sh, inIDs: p.inputs, stateIDs: p.state, logitsID: p.logits}
	for _, id := range p.inputs {
		s.inputs = append(s.inputs, p.tensors[id].name)
	}
	grids := map[int]*grid{}
	for i := range p.ops {
		o := &p.ops[i]
		if o.kind != opConv {
			continue
		}
		stride := p.tensors[o.out].stride
		if grids[stride] == nil {
			grids[stride] = &grid{stride: stride, class: make([]uint8, (height/stride)*(width/stride))}
			s.strides = append(s.strides, stride)
		}
	}
	slices.Sort(s.strides)
	for _, stride := range s.strides {
		s.grids = append(s.grids, grids[stride])
	}
	s.layout(p)
	for i := range p.ops {
		st, err := s.compile(p, w, &p.ops[i], grids)
		if err != nil {
			return nil, err
		}
		s.steps = append(s.steps, st)
	}
	s.inJob, s.outJob = &copyIn{s}, &copyOut{s}
	return s, nil
}

// Inputs lists the plan's inputs, the stage's state input names, in the order
// Run takes them.
func (s *Stage) Inputs() []string { return slices.Clone(s.inputs) }

// Strides lists, ascending, the strides whose index and band tables Run reads.
func (s *Stage) Strides() []int { return slices.Clone(s.strides) }

// Run runs the stage on one frame. in holds the state inputs (NCHW, in
// Inputs order); index and band hold, for every stride of Strides, the
// computed pixels and the band pixels at that stride (flat row-major,
// ascending, the valid prefix only: no -1 padding). Run writes the state
// outputs (NCHW, in the plan's state order) and the logits (NCHW). It does
// not allocate, and checks ctx between operations.
func (s *Stage) Run(ctx context.Context, in [][]float32, index, band map[int][]int64, state [][]float32, logits []float32) error {
	if s.closed || s.shared.closed {
		return ErrClosed
	}
	if err := s.checkArgs(in, state, logits); err != nil {
		return err
	}
	if s.gen != s.shared.gen {
		s.bind()
	}
	for _, g := range s.grids {
		idx, ok := index[g.stride]
		if !ok {
			return fmt.Errorf("native stage %s: no index table for stride %d", s.path, g.stride)
		}
		b, ok := band[g.stride]
		if !ok {
			return fmt.Errorf("native stage %s: no band table for stride %d", s.path, g.stride)
		}
		if err := g.mark(idx, b); err != nil {
			return fmt.Errorf("native stage %s: %w", s.path, err)
		}
	}
	s.in, s.state, s.logits = in, state, logits
	defer s.release()
	pool := s.shared.pool
	pool.run(s.inJob, s.inJob.parts())
	for _, st := range s.steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("native stage %s: %w", s.path, err)
		}
		st.run(pool)
	}
	pool.run(s.outJob, s.outJob.parts())
	return nil
}

// release drops Run's references to the caller's buffers and tables.
func (s *Stage) release() {
	s.in, s.state, s.logits = nil, nil, nil
	for _, g := range s.grids {
		g.index, g.band = nil, nil
	}
}

// Close releases the stage's packed weights (and, for a stage from Load, its
// buffers and workers). It is safe to call more than once.
func (s *Stage) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.maps, s.steps = nil, nil
	if s.own {
		return s.shared.Close()
	}
	return nil
}

func (s *Stage) checkArgs(in, state [][]float32, logits []float32) error {
	if len(in) != len(s.inIDs) {
		return fmt.Errorf("native stage %s: %d inputs, want %d (%v)", s.path, len(in), len(s.inIDs), s.inputs)
	}
	for i, id := range s.inIDs {
		if n := s.size(id); len(in[i]) != n {
			return fmt.Errorf("native stage %s: input %q has %d floats, want %d", s.path, s.inputs[i], len(in[i]), n)
		}
	}
	if len(state) != len(s.stateIDs) {
		return fmt.Errorf("native stage %s: %d state outputs, want %d", s.path, len(state), len(s.stateIDs))
	}
	for i, id := range s.stateIDs {
		if n := s.size(id); len(state[i]) != n {
			return fmt.Errorf("native stage %s: state output %d has %d floats, want %d", s.path, i, len(state[i]), n)
		}
	}
	if n := s.size(s.logitsID); len(logits) != n {
		return fmt.Errorf("native stage %s: logits have %d floats, want %d", s.path, len(logits), n)
	}
	return nil
}

// size is tensor id's float count.
func (s *Stage) size(id int) int {
	m := s.maps[id]
	return m.H * m.W * m.C
}

// mark sets the pixel classes from one frame's tables, checking that they
// are ascending, inside the grid and disjoint.
func (g *grid) mark(index, band []int64) error {
	clear(g.class)
	n := int64(len(g.class))
	prev := int64(-1)
	for k, p := range band {
		if p <= prev || p >= n {
			return fmt.Errorf("band:%d[%d] = %d, want ascending pixels in [0, %d)", g.stride, k, p, n)
		}
		g.class[p] = Band
		prev = p
	}
	prev = -1
	for k, p := range index {
		if p <= prev || p >= n {
			return fmt.Errorf("index:%d[%d] = %d, want ascending pixels in [0, %d)", g.stride, k, p, n)
		}
		if g.class[p] == Band {
			return fmt.Errorf("index:%d[%d] = %d is in band:%d too", g.stride, k, p, g.stride)
		}
		g.class[p] = Computed
		prev = p
	}
	g.index, g.band = index, band
	return nil
}

// layout sizes the stage's buffers, reserves them in its Shared and lays out
// the maps (bound to the buffers at the first Run).
func (s *Stage) layout(p *plan) {
	var sizes []int
	s.bufOf, sizes = planBuffers(p)
	for _, n := range sizes {
		s.bytes += 4 * int64(n)
	}
	s.shared.reserve(sizes)
	views := 0
	for i := range p.ops {
		if p.ops[i].kind == opConcat {
			views += len(p.ops[i].terms)
		}
	}
	s.maps = make([]Map, len(p.tensors), len(p.tensors)+views) // never grows: the steps point into it
	for id, t := range p.tensors {
		h, w := p.height/t.stride, p.width/t.stride
		s.maps[id] = Map{H: h, W: w, C: t.channels, LD: t.channels}
	}
}

// bind points the maps at the Shared's current buffers.
func (s *Stage) bind() {
	for id, b := range s.bufOf {
		m := &s.maps[id]
		m.Data = s.shared.bufs[b][:m.H*m.W*m.C]
	}
	for _, v := range s.views {
		s.maps[v.at].Data = s.maps[v.tensor].Data[v.offset:]
	}
	s.gen = s.shared.gen
}

// planBuffers gives every tensor a buffer shared with tensors whose lives do
// not overlap: a tensor lives from the op that writes it (the inputs: from
// the start) to its last reader (the outputs: to the end), and an op's
// output never shares its inputs' buffers. Buffers are handed out best fit
// from a free list; when none is large enough the largest free one grows.
// It returns each tensor's buffer and the buffers' sizes in floats, largest
// first (so that stages sharing buffers pair their large ones).
func planBuffers(p *plan) (bufOf, sizes []int) {
	n := len(p.ops)
	last := make([]int, len(p.tensors))
	for i := range last {
		last[i] = -1
	}
	for i := range p.ops {
		for _, id := range p.ops[i].reads() {
			last[id] = i
		}
	}
	for _, id := range p.inputs {
		last[id] = max(last[id], 0)
	}
	for _, id := range p.state {
		last[id] = n
	}
	last[p.logits] = n

	size := func(id int) int {
		t := p.tensors[id]
		return (p.height / t.stride) * (p.width / t.stride) * t.channels
	}
	var free []int // free buffer ids
	bufOf = make([]int, len(p.tensors))
	take := func(id int) {
		want := size(id)
		best := -1
		for k, b := range free {
			if sizes[b] >= want && (best < 0 || sizes[b] < sizes[free[best]]) {
				best = k
			}
		}
		if best < 0 && len(free) > 0 {
			best = 0
			for k, b := range free {
				if sizes[b] > sizes[free[best]] {
					best = k
				}
			}
		}
		if best < 0 {
			bufOf[id] = len(sizes)
			sizes = append(sizes, want)
			return
		}
		b := free[best]
		free = slices.Delete(free, best, best+1)
		sizes[b] = max(sizes[b], want)
		bufOf[id] = b
	}
	released := make([]bool, len(p.tensors))
	for _, id := range p.inputs {
		take(id)
	}
	for i := range p.ops {
		take(p.ops[i].out)
		for _, id := range p.ops[i].reads() {
			if last[id] == i && !released[id] {
				released[id] = true
				free = append(free, bufOf[id])
			}
		}
	}
	// Renumber the buffers largest first.
	order := make([]int, len(sizes))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int { return sizes[b] - sizes[a] })
	rank := make([]int, len(sizes))
	sorted := make([]int, len(sizes))
	for r, k := range order {
		rank[k], sorted[r] = r, sizes[k]
	}
	for id := range bufOf {
		bufOf[id] = rank[bufOf[id]]
	}
	return bufOf, sorted
}

// reads lists the tensors an op reads.
func (o *op) reads() []int {
	var ids []int
	if o.in >= 0 {
		ids = append(ids, o.in)
	}
	if o.residual >= 0 {
		ids = append(ids, o.residual)
	}
	for _, t := range o.terms {
		ids = append(ids, t.in)
	}
	return ids
}

// rowsOnly says whether tensor id is read only at the computed pixels of its
// stride: it is no output, and every op reading it is a 1×1 stride-1
// convolution taking it as input (whose rows are the computed pixels of the
// same grid). Its other pixels are then never read, whatever they hold.
func (p *plan) rowsOnly(id int) bool {
	if id == p.logits || slices.Contains(p.state, id) {
		return false
	}
	read := false
	for i := range p.ops {
		o := &p.ops[i]
		if !slices.Contains(o.reads(), id) {
			continue
		}
		if o.kind != opConv || o.kernel != 1 || o.stride != 1 || o.in != id || o.residual == id {
			return false
		}
		read = true
	}
	return read
}

// compile turns a validated op into its step, packing a convolution's
// weights with its BatchNorm folded in.
func (s *Stage) compile(p *plan, w *weightsFile, o *op, grids map[int]*grid) (step, error) {
	switch o.kind {
	case opConv:
		return s.compileConv(p, w, o, grids[p.tensors[o.out].stride])
	case opAvgPool:
		return &poolStep{dst: &s.maps[o.out], src: &s.maps[o.in]}, nil
	case opSum:
		st := &resampleStep{relu: o.relu}
		for _, t := range o.terms {
			st.terms = append(st.terms, resampleTerm{dst: &s.maps[o.out], src: &s.maps[t.in], factor: t.upsample})
		}
		return st, nil
	case opConcat:
		st := &resampleStep{concat: true}
		dst, off := s.maps[o.out], 0
		for _, t := range o.terms {
			src := &s.maps[t.in]
			at := len(s.maps)
			s.maps = append(s.maps, Map{H: dst.H, W: dst.W, C: src.C, LD: dst.LD})
			s.views = append(s.views, concatView{at: at, tensor: o.out, offset: off})
			st.terms = append(st.terms, resampleTerm{dst: &s.maps[at], src: src, factor: t.upsample})
			off += src.C
		}
		return st, nil
	}
	return nil, fmt.Errorf("native plan %s: op kind %q", p.path, o.kind) // unreachable: validated
}

func (s *Stage) compileConv(p *plan, w *weightsFile, o *op, g *grid) (step, error) {
	cout, cin := p.tensors[o.out].channels, p.tensors[o.in].channels
	scale, bias, shift, err := fold(p, w, o, cout)
	if err != nil {
		return nil, err
	}
	weight, err := w.read(&o.weight)
	if err != nil {
		return nil, err
	}
	c := NewConv(weight, cout, cin, o.kernel, o.stride, scale, bias)
	st := &convStep{conv: c, dst: &s.maps[o.out], src: &s.maps[o.in], relu: o.relu, shift: shift, taps: o.taps, g: g,
		rowMACs: cin * cout * o.kernel * o.kernel, rowsOnly: p.rowsOnly(o.out)}
	if o.residual >= 0 {
		st.res = &s.maps[o.residual]
	}
	return st, nil
}

// fold computes a convolution's affine epilogue: with BatchNorm, a =
// gamma/sqrt(var+eps) and c = beta - a·mean (in float64), scale a, bias
// a·convbias + c and shift c (BN(0), the value of a frozen pixel without
// fill); without, scale 1, bias convbias and shift 0.
func fold(p *plan, w *weightsFile, o *op, cout int) (scale, bias, shift []float32, err error) {
	at := func(r *ref) ([]float32, error) { return w.readCopy(r) }
	convBias := make([]float32, cout)
	if o.bias != nil {
		if convBias, err = at(o.bias); err != nil {
			return nil, nil, nil, err
		}
	}
	scale, bias, shift = make([]float32, cout), make([]float32, cout), make([]float32, cout)
	if o.bn == nil {
		for k := range scale {
			scale[k], bias[k] = 1, convBias[k]
		}
		return scale, bias, shift, nil
	}
	var gamma, beta, mean, variance []float32
	for _, r := range []struct {
		dst *[]float32
		ref *ref
	}{{&gamma, &o.bn.gamma}, {&beta, &o.bn.beta}, {&mean, &o.bn.mean}, {&variance, &o.bn.variance}} {
		if *r.dst, err = at(r.ref); err != nil {
			return nil, nil, nil, err
		}
	}
	for k := range scale {
		v := float64(variance[k]) + o.bn.eps
		if !(v > 0) {
			return nil, nil, nil, planError(p.path, o.bn.variance.field, "value %d is %v: var+eps must be positive", k, variance[k])
		}
		a := float64(gamma[k]) / math.Sqrt(v)
		c := float64(beta[k]) - a*float64(mean[k])
		b := a*float64(convBias[k]) + c
		if math.Abs(a) > math.MaxFloat32 || math.Abs(b) > math.MaxFloat32 || math.Abs(c) > math.MaxFloat32 {
			return nil, nil, nil, planError(p.path, o.bn.gamma.field, "channel %d folds to a scale %g and bias %g beyond float32", k, a, b)
		}
		scale[k], bias[k], shift[k] = float32(a), float32(b), float32(c)
	}
	return scale, bias, shift, nil
}

// step is one compiled op.
type step interface {
	run(p *pool)
}

// convStep is a masked convolution: Rows at the computed pixels, Fill at the
// band pixels, then the epilogue (shift at far pixels, residual, ReLU) over
// every pixel. Each phase is split across the pool; the barriers between
// them are what Fill (reads computed rows before the epilogue changes them)
// and the epilogue (reads band rows) need. When every pixel of the stride is
// computed (no band, no far pixel) the epilogue is fused into Rows' store
// and the step is that one pass.
type convStep struct {
	conv     *Conv
	dst, src *Map
	relu     bool
	res      *Map // nil for none
	shift    []float32
	taps     []Tap
	g        *grid
	rowMACs  int
	// rowsOnly: every reader of dst reads only its computed rows (1×1
	// convolutions at the same stride), so the band rows need no fill.
	rowsOnly bool
}

func (c *convStep) run(p *pool) {
	if len(c.g.index) == len(c.g.class) {
		p.run((*convRowsEpilogue)(c), p.macParts(len(c.g.index)*c.rowMACs))
		return
	}
	if len(c.g.index) > 0 {
		p.run((*convRows)(c), p.macParts(len(c.g.index)*c.rowMACs))
	}
	if len(c.g.band) > 0 && !c.rowsOnly {
		p.run((*convFill)(c), p.elementParts(len(c.g.band)*(len(c.taps)+1)*c.dst.C))
	}
	p.run((*convEpilogue)(c), p.elementParts(len(c.g.class)*c.dst.C))
}

type convRows convStep

func (c *convRows) do(part, parts int) {
	lo, hi := chunk(len(c.g.index), part, parts)
	if lo < hi {
		c.conv.Rows(*c.dst, *c.src, c.g.index[lo:hi])
	}
}

// convRowsEpilogue is Rows with the epilogue fused, for a grid whose pixels
// are all computed.
type convRowsEpilogue convStep

func (c *convRowsEpilogue) do(part, parts int) {
	lo, hi := chunk(len(c.g.index), part, parts)
	if lo < hi {
		c.conv.RowsEpilogue(*c.dst, *c.src, c.res, c.relu, c.g.index[lo:hi])
	}
}

type convFill convStep

func (c *convFill) do(part, parts int) {
	lo, hi := chunk(len(c.g.band), part, parts)
	if lo < hi {
		Fill(*c.dst, c.g.class, c.shift, c.taps, c.g.band[lo:hi])
	}
}

type convEpilogue convStep

func (c *convEpilogue) do(part, parts int) {
	lo, hi := chunk(len(c.g.class), part, parts)
	if lo < hi {
		Epilogue(*c.dst, c.g.class, c.shift, c.res, c.relu, lo, hi)
	}
}

// resampleStep is a sum (terms added into one map, ReLU after the last) or a
// concat (each term into its channel slice), split by output rows.
type resampleStep struct {
	terms  []resampleTerm
	concat bool
	relu   bool
}

type resampleTerm struct {
	dst, src *Map
	factor   int
}

func (r *resampleStep) run(p *pool) {
	d := r.terms[0].dst
	p.run(r, p.elementParts(d.H*d.W*d.LD*len(r.terms)))
}

func (r *resampleStep) do(part, parts int) {
	h := r.terms[0].dst.H
	y0, y1 := chunk(h, part, parts)
	if y0 == y1 {
		return
	}
	for k, t := range r.terms {
		accumulate := !r.concat && k > 0
		relu := !r.concat && r.relu && k == len(r.terms)-1
		Resample(*t.dst, *t.src, t.factor, accumulate, relu, y0, y1)
	}
}

// poolStep is a 2×2 average pooling, split by output rows.
type poolStep struct {
	dst, src *Map
}

func (a *poolStep) run(p *pool) {
	p.run(a, p.elementParts(a.src.H*a.src.W*a.src.C))
}

func (a *poolStep) do(part, parts int) {
	y0, y1 := chunk(a.dst.H, part, parts)
	if y0 < y1 {
		AvgPool(*a.dst, *a.src, y0, y1)
	}
}

// copyIn transposes Run's NCHW inputs into their maps, split by pixels.
type copyIn struct{ s *Stage }

func (c *copyIn) parts() int {
	n := 0
	for _, id := range c.s.inIDs {
		n += c.s.size(id)
	}
	return c.s.shared.pool.elementParts(n)
}

func (c *copyIn) do(part, parts int) {
	for i, id := range c.s.inIDs {
		m := c.s.maps[id]
		lo, hi := chunk(m.H*m.W, part, parts)
		if lo < hi {
			FromNCHW(m, c.s.in[i], lo, hi)
		}
	}
}

// copyOut transposes the state outputs and the logits into Run's NCHW
// buffers, split by pixels.
type copyOut struct{ s *Stage }

func (c *copyOut) parts() int {
	n := c.s.size(c.s.logitsID)
	for _, id := range c.s.stateIDs {
		n += c.s.size(id)
	}
	return c.s.shared.pool.elementParts(n)
}

func (c *copyOut) do(part, parts int) {
	for i, id := range c.s.stateIDs {
		m := c.s.maps[id]
		lo, hi := chunk(m.H*m.W, part, parts)
		if lo < hi {
			ToNCHW(c.s.state[i], m, lo, hi)
		}
	}
	m := c.s.maps[c.s.logitsID]
	lo, hi := chunk(m.H*m.W, part, parts)
	if lo < hi {
		ToNCHW(c.s.logits, m, lo, hi)
	}
}

// chunk is part's share [lo, hi) of n items split into parts.
func chunk(n, part, parts int) (lo, hi int) {
	return n * part / parts, n * (part + 1) / parts
}
