package anytime

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/enginestest"
)

const (
	testChannels = 5
	testH, testW = 32, 64 // input; output is 8×16 at stride 4
	testHW       = 8 * 16
)

// testBundle is a 4-stage bundle: a dense first stage, masked stages after.
func testBundle() *bundle.Bundle {
	return enginestest.Bundle(enginestest.BundleSpec{
		Name: "test", H: testH, W: testW, Labels: testChannels, Stages: 4, Threshold: 0.9, FixedMACs: 1 << 30,
		MaskedMACs: map[string]bundle.MaskedMACs{"4": {MACs: 2 << 30, OutChannels: 10}, "8": {MACs: 1 << 30, OutChannels: 4}},
	})
}

// randomStages fills each stage's logits with seeded noise of growing
// sharpness, so confidence rises with depth.
func randomStages(seed uint64) func(i int, image, mask, logits []float32) error {
	return func(i int, image, mask, logits []float32) error {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		for k := range logits {
			logits[k] = float32(r.NormFloat64() * float64(2+2*i))
		}
		return nil
	}
}

// newTestFake is an engine for b whose stages compute with compute.
func newTestFake(b *bundle.Bundle, compute func(int, []float32, []float32, []float32) error) *enginestest.Fake {
	f := enginestest.NewFake(len(b.Stages), 3*testH*testW, testChannels, testHW)
	f.Compute = compute
	return f
}

func newTestExecutor(t *testing.T, b *bundle.Bundle, cfg Config, compute func(int, []float32, []float32, []float32) error) (*Executor, *enginestest.Fake) {
	t.Helper()
	f := newTestFake(b, compute)
	x, err := New(b, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x, f
}

// exitRecord is a copy of what OnExit saw.
type exitRecord struct {
	exit   Exit
	merged []float32
	mask   []uint8
}

// newRecording opens an executor of b on f with cfg that records a copy of
// every exit it reports.
func newRecording(t *testing.T, b *bundle.Bundle, f *enginestest.Fake, cfg Config) (*Executor, *[]exitRecord) {
	t.Helper()
	var recs []exitRecord
	cfg.OnExit = func(e Exit, merged []float32, mask []uint8) {
		recs = append(recs, exitRecord{e, append([]float32(nil), merged...), append([]uint8(nil), mask...)})
	}
	x, err := New(b, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x, &recs
}

// runRecorded runs one frame through a test executor of b with the default
// Config and returns its result, a copy of every exit it reported and the
// engine.
func runRecorded(t *testing.T, b *bundle.Bundle, compute func(int, []float32, []float32, []float32) error) (Result, []exitRecord, *enginestest.Fake) {
	t.Helper()
	f := newTestFake(b, compute)
	x, recs := newRecording(t, b, f, Config{})
	res, err := x.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res, *recs, f
}

func TestCopyAggregationAndMonotoneMasks(t *testing.T) {
	b := testBundle()
	res, recs, f := runRecorded(t, b, randomStages(1))
	if res.Halt != ReasonLastExit || len(recs) != 4 {
		t.Fatalf("got %d exits, halt %q; want 4, last-exit", len(recs), res.Halt)
	}
	for k := 1; k < len(recs); k++ {
		prev, cur := recs[k-1], recs[k]
		logits := f.Logits(k)
		frozen := 0
		for p := 0; p < testHW; p++ {
			if cur.mask[p] > prev.mask[p] {
				t.Fatalf("exit %d: pixel %d unfroze", k+1, p)
			}
			for c := 0; c < testChannels; c++ {
				i := c*testHW + p
				want := logits[i]
				if prev.mask[p] == 0 {
					want = prev.merged[i]
				}
				if math.Float32bits(cur.merged[i]) != math.Float32bits(want) {
					t.Fatalf("exit %d pixel %d channel %d: got %v, want %v (mask %d)", k+1, p, c, cur.merged[i], want, prev.mask[p])
				}
			}
			if prev.mask[p] == 0 {
				frozen++
			}
		}
		if got, want := cur.exit.Frozen, float64(frozen)/testHW; got != want {
			t.Errorf("exit %d: frozen %v, want %v", k+1, got, want)
		}
	}
	if recs[3].exit.Frozen == 0 {
		t.Errorf("no pixel froze by exit 4: the test data does not exercise masking")
	}
}

func TestThresholdExtremes(t *testing.T) {
	t.Run("threshold 1 freezes nothing", func(t *testing.T) {
		b := testBundle()
		b.Confidence.Threshold = 1
		res, recs, f := runRecorded(t, b, randomStages(2))
		if res.Halt != ReasonLastExit {
			t.Fatalf("halted %q, want last-exit", res.Halt)
		}
		for k, r := range recs {
			if r.exit.Frozen != 0 {
				t.Errorf("exit %d froze %v of the pixels", k+1, r.exit.Frozen)
			}
			for i, v := range f.Logits(k) {
				if r.merged[i] != v {
					t.Fatalf("exit %d is not its own logits at %d", k+1, i)
				}
			}
		}
	})
	t.Run("threshold below 1/C freezes everything after exit 1", func(t *testing.T) {
		b := testBundle()
		b.Confidence.Threshold = 1.0/testChannels - 1e-3
		res, recs, f := runRecorded(t, b, randomStages(3))
		if res.Halt != ReasonAllConfident || len(res.Exits) != 1 || len(f.Runs) != 1 {
			t.Fatalf("got halt %q after %d exits (%d runs), want all-confident after 1", res.Halt, len(res.Exits), len(f.Runs))
		}
		for i, v := range recs[0].merged {
			if math.Float32bits(res.Merged[i]) != math.Float32bits(v) {
				t.Fatalf("final result differs from exit 1 at %d", i)
			}
		}
	})
}

func TestSetThresholdAppliesToNextFrame(t *testing.T) {
	b := testBundle()
	x, _ := newTestExecutor(t, b, Config{}, randomStages(4))
	x.SetThreshold(0)
	res, err := x.Run(context.Background())
	if err != nil || res.Halt != ReasonAllConfident {
		t.Fatalf("threshold 0: got %q, %v; want all-confident", res.Halt, err)
	}
	x.SetThreshold(2)
	if res, err = x.Run(context.Background()); err != nil || res.Halt != ReasonLastExit {
		t.Fatalf("threshold 2: got %q, %v; want last-exit", res.Halt, err)
	}
}

func TestEffectiveGMACs(t *testing.T) {
	b := testBundle()
	// Stage 1 makes pixel 0 of each 2×2 output cell's top-left unsure and
	// the rest confident: 1 in 4 pixels active at stride 4, and at stride 8
	// nearest picks exactly those top-left pixels, so all of them.
	compute := func(i int, image, mask, logits []float32) error {
		if i > 0 {
			return nil
		}
		for p := 0; p < testHW; p++ {
			y, xx := p/16, p%16
			if y%2 == 0 && xx%2 == 0 {
				continue // all logits 0: confidence 1/C, unsure
			}
			logits[p] = 100 // class 0 certain
		}
		return nil
	}
	_, recs, _ := runRecorded(t, b, compute)
	// Stage 2: fixed 1 GMAC; stride 4 (8×16): 2 GMACs·0.25 + 0.75·0.25·10·49·128/2^30;
	// stride 8 (4×8): p = 1, so 1 GMAC.
	rbf := 0.75 * 0.25 * 10 * 49 * 128 / float64(1<<30)
	want := []float64{1, 1 + 1 + 0.5 + rbf + 1}
	for k, w := range want {
		if got := recs[k].exit.GMACs; math.Abs(got-w) > 1e-12 {
			t.Errorf("exit %d: cumulative GMACs %v, want %v", k+1, got, w)
		}
	}
}

// haltAt is a test policy: it halts before stage `at` with its reason, or
// when the frame has used more than `budget` time.
type haltAt struct {
	at     int
	budget time.Duration
	reason Reason
	seen   []Progress
	done   []StageCost
}

func (h *haltAt) StartFrame(time.Time) {}

func (h *haltAt) Continue(p Progress) Decision {
	h.seen = append(h.seen, p)
	if p.Next == h.at || (h.budget > 0 && p.Elapsed > h.budget) {
		return Decision{Reason: h.reason}
	}
	return Decision{Continue: true}
}

func (h *haltAt) StageDone(c StageCost) { h.done = append(h.done, c) }

func TestPolicyDecides(t *testing.T) {
	t.Run("max exit", func(t *testing.T) {
		pol := &haltAt{at: 2, reason: ReasonMaxExit}
		x, f := newTestExecutor(t, testBundle(), Config{Policy: pol}, randomStages(5))
		res, err := x.Run(context.Background())
		if err != nil || res.Halt != ReasonMaxExit || len(res.Exits) != 2 || len(f.Runs) != 2 {
			t.Fatalf("got halt %q after %d exits, %v; want max-exit after 2", res.Halt, len(res.Exits), err)
		}
		if len(pol.seen) != 2 || pol.seen[0].Next != 1 || pol.seen[1].Next != 2 || pol.seen[1].Stages != 4 {
			t.Errorf("policy was asked %+v", pol.seen)
		}
		if len(pol.done) != 2 || pol.done[1].Stage != 1 || pol.done[1].GMACs <= 0 {
			t.Errorf("policy was told %+v", pol.done)
		}
	})
	t.Run("deadline already passed", func(t *testing.T) {
		slow := func(i int, image, mask, logits []float32) error {
			time.Sleep(2 * time.Millisecond)
			return randomStages(6)(i, image, mask, logits)
		}
		pol := &haltAt{at: -1, budget: time.Millisecond, reason: ReasonDeadline}
		x, f := newTestExecutor(t, testBundle(), Config{Policy: pol}, slow)
		res, err := x.Run(context.Background())
		if err != nil || res.Halt != ReasonDeadline || len(f.Runs) != 1 {
			t.Fatalf("got halt %q after %d runs, %v; want deadline after 1", res.Halt, len(f.Runs), err)
		}
	})
}

func TestBadLogitsAreAFrameError(t *testing.T) {
	compute := func(i int, image, mask, logits []float32) error {
		randomStages(7)(i, image, mask, logits)
		if i == 2 {
			logits[3] = float32(math.NaN())
		}
		return nil
	}
	b := testBundle()
	b.Confidence.Threshold = 2
	x, _ := newTestExecutor(t, b, Config{}, compute)
	res, err := x.Run(context.Background())
	if !errors.Is(err, ErrBadLogits) || res.Halt != ReasonError || len(res.Exits) != 2 {
		t.Fatalf("got %v, halt %q after %d exits; want ErrBadLogits after 2", err, res.Halt, len(res.Exits))
	}
}

func TestCancelledContextStopsBetweenStages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	compute := func(i int, image, mask, logits []float32) error {
		if i == 1 {
			cancel()
		}
		return randomStages(8)(i, image, mask, logits)
	}
	b := testBundle()
	b.Confidence.Threshold = 2
	x, f := newTestExecutor(t, b, Config{}, compute)
	_, err := x.Run(ctx)
	if !errors.Is(err, context.Canceled) || len(f.Runs) != 2 {
		t.Fatalf("got %v after %d runs, want context.Canceled after 2", err, len(f.Runs))
	}
}

// blocksBundle turns stage 2 of the test bundle into a blocks stage with
// cells of 4 exit pixels (a 2×4 grid of the 8×16 map) and buckets 2, 4, 8.
func blocksBundle() *bundle.Bundle {
	b := testBundle()
	b.Stages[1].Mode = bundle.ModeBlocks
	b.Stages[1].Blocks = &bundle.Blocks{Size: 4, Buckets: []int{2, 4, 8}, Dense: bundle.DenseTwin{File: "s2.dense.onnx", Mask: "mask"}}
	return b
}

// cellOf is the cell id of exit pixel p in blocksBundle's grid.
func cellOf(p int) int64 { return int64((p/16)/4*4 + (p%16)/4) }

func TestBlocksStageRunsActiveCells(t *testing.T) {
	b := blocksBundle()
	// Stage 1 leaves pixels in cells 0 and 5 unsure (one pixel each),
	// everything else confident.
	var twinMask []float32
	stage1 := func(i int, image, mask, logits []float32) error {
		if i == 1 {
			twinMask = append([]float32(nil), mask...) // the dense twin's block mask
		}
		if i != 0 {
			return nil
		}
		for p := 0; p < testHW; p++ {
			logits[p] = 100
		}
		logits[0*16+1] = 0 // cell 0
		logits[5*16+5] = 0 // cell (1,1) = 5
		for c := 1; c < testChannels; c++ {
			logits[c*testHW+1], logits[c*testHW+5*16+5] = 0, 0
		}
		return nil
	}
	f := newTestFake(b, stage1)
	x, recs := newRecording(t, b, f, Config{})
	var gotIDs, gotNeigh []int64
	f.ComputeBlocks = func(i int, ids, neighbours []int64, logits []float32) error {
		gotIDs, gotNeigh = append([]int64(nil), ids...), append([]int64(nil), neighbours...)
		for k := range logits {
			logits[k] = 7
		}
		return nil
	}
	res, err := x.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.BlockRuns) != 1 || f.BlockRuns[0] != [2]int{1, 2} {
		t.Fatalf("block runs %v, want stage 1 on bucket 2", f.BlockRuns)
	}
	if !slices.Equal(gotIDs, []int64{0, 5}) {
		t.Errorf("ids %v, want [0 5]", gotIDs)
	}
	// Cell 5 is (row 1, col 1) of the 2×4 grid: neighbours 0 1 2 4 6, then outside.
	if !slices.Equal(gotNeigh[8:16], []int64{0, 1, 2, 4, 6, 8, 8, 8}) {
		t.Errorf("neighbours of cell 5: %v", gotNeigh[8:16])
	}
	ex := (*recs)[1].exit
	if ex.Ran != "blocks" || ex.Frozen != 0.75 {
		t.Errorf("exit 2 ran %q with frozen %v, want blocks and 0.75 (6 of 8 cells frozen)", ex.Ran, ex.Frozen)
	}
	// Copy aggregation uses the block mask: every pixel of cells 0 and 5
	// takes the new logits (7), the other cells keep exit 1's.
	merged := (*recs)[1].merged
	for p := 0; p < testHW; p++ {
		want := float32(100)
		if c := cellOf(p); c == 0 || c == 5 {
			want = 7
		}
		if merged[p] != want {
			t.Fatalf("pixel %d (cell %d): merged %v, want %v", p, cellOf(p), merged[p], want)
		}
	}
	// Effective GMACs of the blocks stage: fixed 1 + (2 + 1)·0.25, no RBF term.
	if got := (*recs)[1].exit.GMACs - (*recs)[0].exit.GMACs; math.Abs(got-1.75) > 1e-12 {
		t.Errorf("blocks stage GMACs %v, want 1.75", got)
	}
	_ = res

	// The dispatcher: with no bucket allowed, the dense twin runs with the
	// block mask.
	x.SetMaxBlocks(1, 0)
	f.Runs = f.Runs[:0]
	if _, err := x.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.BlockRuns) != 1 || !slices.Contains(f.Runs, 1) {
		t.Fatalf("dense twin not run: runs %v, block runs %v", f.Runs, f.BlockRuns)
	}
	if (*recs)[len(*recs)-3].exit.Ran != "blocks-dense" {
		t.Errorf("ran %q, want blocks-dense", (*recs)[len(*recs)-3].exit.Ran)
	}
	ones := 0
	for p, v := range twinMask {
		if v == 1 {
			ones++
			if c := cellOf(p); c != 0 && c != 5 {
				t.Fatalf("block mask set in cell %d", c)
			}
		}
	}
	if ones != 32 {
		t.Errorf("block mask has %d ones, want 32 (two 4×4 cells)", ones)
	}
}

func TestBlocksStageWithoutBlocksObjectIsRefused(t *testing.T) {
	b := testBundle()
	b.Stages[2].Mode = bundle.ModeBlocks
	f := enginestest.NewFake(4, 3*testH*testW, testChannels, testHW)
	if _, err := New(b, f, Config{}); err == nil {
		t.Fatal("a blocks stage without its blocks object was accepted")
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	b := testBundle()
	x, f := newTestExecutor(t, b, Config{Policy: &haltAt{at: -1, seen: make([]Progress, 0, 1<<10), done: make([]StageCost, 0, 1<<10)}}, randomStages(9))
	for k := 0; k < 4; k++ {
		randomStages(9)(k, nil, nil, f.Logits(k)) // fixed logits; no per-run work in the fake
	}
	f.Compute = nil
	f.Runs = make([]int, 0, 1<<16)
	x.Run(context.Background())
	if n := testing.AllocsPerRun(20, func() { x.Run(context.Background()) }); n != 0 {
		t.Errorf("a frame allocates %v times, want 0", n)
	}
}

func TestHardDeadlineStopsAStageInFlight(t *testing.T) {
	compute := randomStages(10)
	b := testBundle()
	b.Confidence.Threshold = 2
	f := enginestest.NewFake(4, 3*testH*testW, testChannels, testHW)
	x, err := New(b, blockingEngine{f, compute}, Config{HardDeadline: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := x.Run(context.Background())
	if err != nil || res.Halt != ReasonDeadline || len(res.Exits) != 1 {
		t.Fatalf("got halt %q after %d exits, %v; want deadline after exit 1", res.Halt, len(res.Exits), err)
	}
}

// blockingEngine runs stage 0 normally and blocks every later stage until
// its context ends, like a stage that overruns the frame's deadline.
type blockingEngine struct {
	*enginestest.Fake
	compute func(int, []float32, []float32, []float32) error
}

func (e blockingEngine) Run(ctx context.Context, i int) error {
	if i == 0 {
		return e.compute(0, e.Image(), e.Mask(), e.Logits(0))
	}
	<-ctx.Done()
	return ctx.Err()
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// slowEngine makes the sparse graph cost per block and the dense twin a
// fixed amount of the executor's clock, to check the dispatcher's
// break-even.
type slowEngine struct {
	*enginestest.Fake
	clock           *fakeClock
	perBlock, dense time.Duration
}

func (e slowEngine) RunBlocks(ctx context.Context, i, bucket int) error {
	e.clock.advance(time.Duration(bucket) * e.perBlock)
	return e.Fake.RunBlocks(ctx, i, bucket)
}

func (e slowEngine) Run(ctx context.Context, i int) error {
	if i == 1 {
		e.clock.advance(e.dense)
	}
	return e.Fake.Run(ctx, i)
}

func TestCalibrateSetsTheBreakEven(t *testing.T) {
	b := blocksBundle()
	f := enginestest.NewFake(4, 3*testH*testW, testChannels, testHW)
	// Blocks cost 2 ms each, the twin 11 ms: buckets 2 (4 ms) and 4 (8 ms)
	// win, 8 (16 ms) loses.
	clock := &fakeClock{t: time.Unix(0, 0)}
	e := slowEngine{Fake: f, clock: clock, perBlock: 2 * time.Millisecond, dense: 11 * time.Millisecond}
	x, err := New(b, e, Config{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	cal, err := x.Calibrate(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cal) != 1 || cal[0].Stage != 1 || cal[0].MaxBucket != 4 {
		t.Fatalf("calibration %+v, want stage 1 with max bucket 4", cal)
	}
	if cal[0].Dense != 11*time.Millisecond || cal[0].Blocks[2] != 4*time.Millisecond || cal[0].Blocks[8] != 16*time.Millisecond {
		t.Errorf("measured %+v, want the engine's costs exactly", cal[0])
	}
	if x.maxBucket[1].Load() != 4 {
		t.Errorf("dispatcher not set: %d", x.maxBucket[1].Load())
	}
}
