package anytime

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/engines/enginestest"
	"github.com/anytime-edge/edge/masking"
)

// sparseBundle is testBundle with stages 2–4 sparse: index and band tables
// at strides 4 (8×16) and 8 (4×8), bands of radius 1 and 2.
func sparseBundle() *bundle.Bundle {
	b := testBundle()
	for i := 1; i < 4; i++ {
		s := &b.Stages[i]
		s.Mode = bundle.ModeSparse
		s.Inputs = map[string]string{"idx4": "index:4", "band4": "band:4", "idx8": "index:8", "band8": "band:8"}
		s.Sparse = &bundle.Sparse{
			Bands:  map[string]int{"4": 1, "8": 2},
			Masked: bundle.MaskedGraph{File: "masked.onnx", Mask: "mask"},
			Dense:  &bundle.DenseGraph{File: "dense.onnx"},
		}
	}
	return b
}

// Table order (by input name): band4, band8, idx4, idx8.
var sparseSpecs = []masking.Table{
	{Height: 8, Width: 16, Band: true, Radius: 1},
	{Height: 4, Width: 8, Band: true, Radius: 2},
	{Height: 8, Width: 16},
	{Height: 4, Width: 8},
}

func newSparseFake(b *bundle.Bundle) *enginestest.Fake {
	f := newTestFake(b, nil)
	for i := 1; i < len(b.Stages); i++ {
		f.SetTables(i, 8*16, 4*8, 8*16, 4*8)
	}
	return f
}

// TestSparseStagesGetTheMasksTables checks that a sparse stage receives
// the index and band tables of the mask it runs with, and that its exit
// merges and records like a masked stage.
func TestSparseStagesGetTheMasksTables(t *testing.T) {
	b := sparseBundle()
	f := newSparseFake(b)
	f.Compute = randomStages(3)
	var got [][][]int64
	f.ComputeSparse = func(i int, tables [][]int64, lens []int, logits []float32) error {
		var copies [][]int64
		for k := range tables {
			copies = append(copies, slices.Clone(tables[k][:lens[k]]))
		}
		got = append(got, copies)
		return randomStages(3)(i, nil, nil, logits)
	}
	x, recs := newRecording(t, b, f, Config{})
	if _, err := x.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(*recs) != 4 || !slices.Equal(f.SparseRuns, []int{1, 2, 3}) || len(f.Runs) != 1 {
		t.Fatalf("%d exits, sparse runs %v, other runs %v; want 4 exits, stages 1–3 sparse", len(*recs), f.SparseRuns, f.Runs)
	}
	for k := 1; k < 4; k++ {
		mask := (*recs)[k-1].mask // the mask stage k ran with
		want := masking.NewTables(8, 16, sparseSpecs)
		dst := [][]int64{make([]int64, 128), make([]int64, 32), make([]int64, 128), make([]int64, 32)}
		lens := make([]int, 4)
		want.Build(mask, dst, lens)
		for j := range dst {
			if !slices.Equal(got[k-1][j], dst[j][:lens[j]]) {
				t.Errorf("stage %d table %d: got %v, want %v", k+1, j, got[k-1][j], dst[j][:lens[j]])
			}
		}
		if (*recs)[k].exit.Ran != RanSparse {
			t.Errorf("exit %d ran %q, want sparse", k+1, (*recs)[k].exit.Ran)
		}
	}
	if len(got[2][2]) == 0 || len(got[2][2]) == 128 {
		t.Errorf("stage 4 computes %d of 128 pixels: the test does not exercise partial masks", len(got[2][2]))
	}
}

func TestDispatchForcesAPath(t *testing.T) {
	tests := []struct {
		dispatch  Dispatch
		threshold float32 // 1: nothing freezes, the mask stays all ones
		want      string
	}{
		{DispatchSparse, 0.9, RanSparse},
		{DispatchSparse, 1, RanSparse},
		{DispatchDense, 0.9, RanMasked},
		{DispatchDense, 1, RanDense},
		{DispatchAuto, 0.9, RanSparse}, // uncalibrated: the sparse graph
	}
	for _, tt := range tests {
		t.Run(tt.dispatch.String()+"/"+tt.want, func(t *testing.T) {
			b := sparseBundle()
			b.Confidence.Threshold = tt.threshold
			f := newSparseFake(b)
			f.Compute = randomStages(4)
			x, recs := newRecording(t, b, f, Config{})
			x.SetDispatch(tt.dispatch)
			if _, err := x.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			ran := (*recs)[1].exit.Ran
			if ran != tt.want {
				t.Errorf("stage 2 ran %q, want %q", ran, tt.want)
			}
			if last := len(*recs) - 1; tt.want == RanMasked && !slices.Equal(f.Mask(), floatMask((*recs)[last-1].mask)) {
				t.Error("the masked graph did not get the last mask")
			}
		})
	}
	// A stage without a dense graph runs the masked one on an all-ones mask.
	b := sparseBundle()
	b.Confidence.Threshold = 1
	b.Stages[1].Sparse.Dense = nil
	f := newSparseFake(b)
	x, recs := newRecording(t, b, f, Config{})
	x.SetDispatch(DispatchDense)
	x.Run(context.Background())
	if ran := (*recs)[1].exit.Ran; ran != RanMasked {
		t.Errorf("no dense graph: stage 2 ran %q, want masked", ran)
	}
}

func floatMask(m []uint8) []float32 {
	out := make([]float32, len(m))
	masking.ToFloat(out, m)
	return out
}

// clockEngine advances a fake clock by a cost per path: the sparse graph
// 2 ms + 10 ms × the computed fraction at stride 4, the masked graph 7 ms,
// the dense graph 5 ms.
type clockEngine struct {
	*enginestest.Fake
	now *time.Time
}

func (e clockEngine) RunSparse(ctx context.Context, i int, lens []int) error {
	*e.now = e.now.Add(2*time.Millisecond + time.Duration(float64(10*time.Millisecond)*float64(lens[2])/128))
	return e.Fake.RunSparse(ctx, i, lens)
}

func (e clockEngine) Run(ctx context.Context, i int) error {
	if i > 0 {
		*e.now = e.now.Add(7 * time.Millisecond)
	}
	return e.Fake.Run(ctx, i)
}

func (e clockEngine) RunDense(ctx context.Context, i int) error {
	*e.now = e.now.Add(5 * time.Millisecond)
	return e.Fake.RunDense(ctx, i)
}

func TestCalibrateSparseSetsTheDispatcher(t *testing.T) {
	b := sparseBundle()
	f := newSparseFake(b)
	now := time.Unix(0, 0)
	e := clockEngine{Fake: f, now: &now}
	x, err := New(b, e, Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := x.Calibrate(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cal) != 3 {
		t.Fatalf("%d calibrations, want one per sparse stage", len(cal))
	}
	// Synthetic masks compute round(a·128) pixels: 32 at a = 0.25.
	c := cal[0]
	if c.Sparse[1] != 12*time.Millisecond || c.Sparse[0.25] != 4500*time.Microsecond || c.Masked != 7*time.Millisecond || c.Dense != 5*time.Millisecond {
		t.Fatalf("measured %+v", c)
	}
	if math.Abs(c.BreakEven-0.5) > 1e-9 || c.Ones != RanDense {
		t.Fatalf("break-even %v, all-ones path %q; want 0.5 and dense", c.BreakEven, c.Ones)
	}
	ss := x.sparse[1]
	for _, tt := range []struct {
		active float64
		want   string
	}{{0.1, RanSparse}, {0.5, RanSparse}, {0.51, RanMasked}, {0.99, RanMasked}, {1, RanDense}} {
		if got := ss.path(DispatchAuto, tt.active); got != tt.want {
			t.Errorf("at %v: %q, want %q", tt.active, got, tt.want)
		}
	}
}

func TestBreakEven(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		low, full, masked time.Duration
		want              float64
	}{
		{4500 * time.Microsecond, 12 * ms, 7 * ms, 0.5},
		{4 * ms, 12 * ms, 20 * ms, 1},  // sparse always faster
		{4 * ms, 12 * ms, 1 * ms, 0},   // masked always faster
		{10 * ms, 10 * ms, 11 * ms, 1}, // flat and faster
	} {
		if got := breakEven(tt.low, tt.full, tt.masked); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("breakEven(%v, %v, %v) = %v, want %v", tt.low, tt.full, tt.masked, got, tt.want)
		}
	}
}

// TestReplacementMasks runs stages on the given masks: their fractions are
// what the exits record, and an empty one skips the rest.
func TestReplacementMasks(t *testing.T) {
	b := sparseBundle()
	masks, err := masking.Synthetic(8, 16, []float64{0.75, 0.5, 0}, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := newSparseFake(b)
	x, recs := newRecording(t, b, f, Config{Masks: [][]uint8{nil, masks[0], masks[1], masks[2]}})
	res, err := x.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(*recs) != 3 || res.Halt != ReasonAllConfident {
		t.Fatalf("%d exits, halt %q; want 3, all-confident", len(*recs), res.Halt)
	}
	for k, want := range []float64{0, 0.25, 0.5} {
		if got := (*recs)[k].exit.Frozen; got != want {
			t.Errorf("exit %d frozen %v, want %v", k+1, got, want)
		}
	}
	if _, err := New(b, f, Config{Masks: [][]uint8{nil, make([]uint8, 3), nil, nil}}); err == nil {
		t.Error("a mask of the wrong size was accepted")
	}
}

func TestSparseEffectiveGMACs(t *testing.T) {
	b := sparseBundle()
	masks, _ := masking.Synthetic(8, 16, []float64{0.5}, 1)
	f := newSparseFake(b)
	x, recs := newRecording(t, b, f, Config{Masks: [][]uint8{nil, masks[0], masks[0], masks[0]}})
	if _, err := x.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Stage 2: fixed 1 + 2·p4 + 1·p8 GMACs, no fill term.
	p4 := masking.ResizedFraction(masks[0], 8, 16, 8, 16)
	p8 := masking.ResizedFraction(masks[0], 8, 16, 4, 8)
	if got, want := (*recs)[1].exit.GMACs-(*recs)[0].exit.GMACs, 1+2*p4+p8; math.Abs(got-want) > 1e-12 {
		t.Errorf("stage 2: %v GMACs, want %v", got, want)
	}
}

func TestSparseRunDoesNotAllocate(t *testing.T) {
	b := sparseBundle()
	f := newSparseFake(b)
	for k := 0; k < 4; k++ {
		randomStages(9)(k, nil, nil, f.Logits(k))
	}
	f.SparseRuns = make([]int, 0, 1<<16)
	f.Runs = make([]int, 0, 1<<16)
	x, err := New(b, f, Config{})
	if err != nil {
		t.Fatal(err)
	}
	x.Run(context.Background())
	if n := testing.AllocsPerRun(20, func() { x.Run(context.Background()) }); n != 0 {
		t.Errorf("a frame allocates %v times, want 0", n)
	}
}

func TestOperatingPoint(t *testing.T) {
	b := sparseBundle()
	masks, err := OperatingPoint(b, []float64{0.82, 0.63, 0.38}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(masks) != 4 || masks[0] != nil {
		t.Fatalf("%d masks, first %v; want 4 with none for stage 1", len(masks), masks[0])
	}
	for k, want := range []float64{0.82, 0.63, 0.38} {
		if got := masking.Fraction(masks[k+1]); math.Abs(got-want) > 1.0/testHW {
			t.Errorf("stage %d computes %v, want %v", k+2, got, want)
		}
	}
	for _, bad := range [][]float64{{0.5, 0.5}, {0.3, 0.5, 0.1}} {
		if _, err := OperatingPoint(b, bad, 1); err == nil {
			t.Errorf("fractions %v accepted", bad)
		}
	}
}

// BenchmarkGoWorkW18Small is the Go side of one W18-Small frame at
// 512×1024 (19 classes, exits 128×256) in sparse mode at the operating
// point 0.82, 0.63, 0.38: every exit's merge and confidence, the masks and
// each sparse stage's tables at strides 4–32 with radius-3 bands. The
// engine is a fake that computes nothing, so this is all the executor adds
// to the graphs' time.
func BenchmarkGoWorkW18Small(b *testing.B) {
	const classes, h, w = 19, 128, 256
	m := bundle.Manifest{
		Format: bundle.Format, Name: "w18s", Task: bundle.TaskSegmentation, OutputStride: 4,
		Input:      bundle.Input{Tensor: "image", Shape: []int64{1, 3, 4 * h, 4 * w}, Color: "rgb", Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}},
		Confidence: bundle.Confidence{Criterion: bundle.CriterionMaxSoftmax, Threshold: 0.998},
	}
	for c := range classes {
		m.Labels = append(m.Labels, bundle.Label{Name: string(rune('a' + c))})
	}
	m.Stages = append(m.Stages, bundle.Stage{Name: "s1", Mode: bundle.ModeDense, Logits: "logits"})
	for i := 2; i <= 4; i++ {
		s := bundle.Stage{Name: "s" + string(rune('0'+i)), Mode: bundle.ModeSparse, Logits: "logits", Inputs: map[string]string{},
			Sparse: &bundle.Sparse{Bands: map[string]int{}, Masked: bundle.MaskedGraph{File: "m", Mask: "mask"}, Dense: &bundle.DenseGraph{File: "d"}},
			MACs:   bundle.MACs{Masked: map[string]bundle.MaskedMACs{}}}
		for _, stride := range []string{"4", "8", "16", "32"} {
			s.Inputs["idx"+stride], s.Inputs["band"+stride] = "index:"+stride, "band:"+stride
			s.Sparse.Bands[stride] = 3
			s.MACs.Masked[stride] = bundle.MaskedMACs{MACs: 1 << 30, OutChannels: 64}
		}
		m.Stages = append(m.Stages, s)
	}
	bd := &bundle.Bundle{Dir: "bench", Manifest: m}
	f := enginestest.NewFake(4, 3*16*h*w, classes, h*w)
	for i := 1; i < 4; i++ {
		var sizes []int
		for _, tb := range bd.Stages[i].Tables() {
			sizes = append(sizes, (4*h/tb.Stride)*(4*w/tb.Stride))
		}
		f.SetTables(i, sizes...)
	}
	for k := range 4 {
		randomStages(9)(k, nil, nil, f.Logits(k))
	}
	f.Runs, f.SparseRuns = make([]int, 0, 1<<20), make([]int, 0, 1<<20)
	masks, err := OperatingPoint(bd, []float64{0.82, 0.63, 0.38}, 1)
	if err != nil {
		b.Fatal(err)
	}
	x, err := New(bd, f, Config{Masks: masks})
	if err != nil {
		b.Fatal(err)
	}
	x.SetDispatch(DispatchSparse)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if len(f.Runs) > 1<<19 {
			f.Runs, f.SparseRuns = f.Runs[:0], f.SparseRuns[:0]
		}
	}
}

// TestSparseStageWithoutItsSparseGraph runs an engine opened without the
// sparse graphs (engines.PathMasked|PathDense): sparse stages run their
// masked graph whatever the dispatch, and calibration leaves them alone.
func TestSparseStageWithoutItsSparseGraph(t *testing.T) {
	b := sparseBundle()
	f := newTestFake(b, randomStages(5))
	x, recs := newRecording(t, b, f, Config{})
	if cal, err := x.Calibrate(context.Background(), 1); err != nil || len(cal) != 0 {
		t.Fatalf("calibrated %v, %v; want nothing", cal, err)
	}
	x.SetDispatch(DispatchSparse)
	if _, err := x.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.SparseRuns) != 0 || (*recs)[1].exit.Ran != RanMasked {
		t.Errorf("sparse runs %v, stage 2 ran %q; want none and masked", f.SparseRuns, (*recs)[1].exit.Ran)
	}
}

func TestDispatchPaths(t *testing.T) {
	for d, want := range map[Dispatch]engines.Paths{
		DispatchAuto: engines.AllPaths, DispatchSparse: engines.PathSparse, DispatchDense: engines.PathMasked | engines.PathDense,
	} {
		if got := d.Paths(); got != want {
			t.Errorf("%v: paths %b, want %b", d, got, want)
		}
	}
}

// TestSparseStageWithOnlyItsSparsePath runs sparse stages whose engine
// opened only the sparse path (the native plan on the CPU): every dispatch
// runs it, calibration times only it, and no frame reaches a graph that is
// not open.
func TestSparseStageWithOnlyItsSparsePath(t *testing.T) {
	b := sparseBundle()
	f := newSparseFake(b)
	f.Unopened = map[int]engines.Paths{}
	for i := 1; i < len(b.Stages); i++ {
		f.Unopened[i] = engines.PathMasked | engines.PathDense
	}
	now := time.Unix(0, 0)
	e := clockEngine{Fake: f, now: &now}
	x, err := New(b, e, Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := x.Calibrate(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if c := cal[0]; c.Masked != 0 || c.Dense != 0 || c.BreakEven != 1 || c.Ones != RanSparse {
		t.Fatalf("calibrated %+v, want the sparse path alone", c)
	}
	ss := x.sparse[1]
	for _, d := range []Dispatch{DispatchAuto, DispatchSparse, DispatchDense} {
		for _, active := range []float64{0.1, 0.9, 1} {
			if got := ss.path(d, active); got != RanSparse {
				t.Errorf("%v at %v: %q, want sparse", d, active, got)
			}
		}
	}
	f.Runs, f.DenseRuns, f.SparseRuns = nil, nil, nil
	for _, d := range []Dispatch{DispatchAuto, DispatchDense} {
		x.SetDispatch(d)
		if _, err := x.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if slices.ContainsFunc(f.Runs, func(i int) bool { return i > 0 }) || len(f.DenseRuns) > 0 || len(f.SparseRuns) == 0 {
		t.Errorf("ran masked %v, dense %v, sparse %v; want only the sparse path after stage 1", f.Runs, f.DenseRuns, f.SparseRuns)
	}
}
