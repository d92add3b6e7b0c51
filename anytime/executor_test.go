package anytime

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
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
