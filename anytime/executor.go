package anytime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/masking"
)

// gmac is the paper's GFLOP unit: 2^30 multiply-accumulates.
const gmac = 1 << 30

// Config is how an Executor runs frames.
type Config struct {
	// Policy decides whether to run each stage after the first; nil runs
	// every stage until all pixels are frozen.
	Policy Policy
	// Meter attributes energy to stages; nil records none.
	Meter Meter
	// HardDeadline, when positive, stops a stage after the first that is
	// still running that long after the frame started; the frame then ends
	// at the last finished exit with reason deadline.
	HardDeadline time.Duration
	// OnExit, when set, is called synchronously with each exit's merged
	// result as soon as it exists. The slices are the executor's own and
	// valid only during the call.
	OnExit func(e Exit, merged []float32, mask []uint8)
	// Masks, when Masks[i] is non-nil, replaces the mask computed before
	// masked or sparse stage i (h×w, 1 = compute): benchmarks time a
	// bundle at a chosen operating point with it (masking.Synthetic).
	Masks [][]uint8
	// Now is the clock Calibrate measures with; nil is time.Now.
	Now func() time.Time
}

// Exit is what one exit of one frame produced and cost.
type Exit struct {
	// Exit is the 1-based exit number.
	Exit int
	// Stage is the stage's wall time (run, merge, confidence and mask).
	Stage time.Duration
	// Elapsed is the time since the frame started.
	Elapsed time.Duration
	// Frozen is the fraction of output pixels this stage did not compute.
	Frozen float64
	// GMACs is the cumulative effective GMACs up to this exit.
	GMACs float64
	// EnergyJ is the stage's energy in joules and EnergySource its
	// source; zero and empty when no meter is attached.
	EnergyJ      float64
	EnergySource Source
	// Provider is the execution provider that ran the stage.
	Provider string
	// Ran is how the stage ran: RanDense, RanMasked or RanSparse (a
	// sparse stage runs any of them, as the dispatcher chose).
	Ran string
}

// Result is one frame's outcome.
type Result struct {
	Exits []Exit
	// Halt is why the frame stopped after its last exit.
	Halt Reason
	// Merged is the final merged output ([C][h][w]) and Mask the pixels
	// still unconfident after it (1 = would compute). Both are the
	// executor's buffers, valid until the next Run.
	Merged []float32
	Mask   []uint8
}

// Executor runs frames of one bundle on one engine.
type Executor struct {
	bundle    *bundle.Bundle
	engine    engines.Engine
	cfg       Config
	crit      masking.Criterion
	adaptive  bool // some stage is masked
	threshold atomic.Uint32
	hardStop  atomic.Int64 // HardDeadline in nanoseconds
	dispatch  atomic.Int32 // Dispatch of sparse stages

	h, w      int
	merged    []float32
	conf      []float32
	scratch   []float32
	mask      []uint8
	maskFloat []float32
	masked    [][]masking.MaskedConvs
	exits     []Exit
	// Sparse stages: index tables and dispatcher (nil for other stages).
	sparse []*sparseStage
}

// New makes an executor for bundle b running on engine e.
func New(b *bundle.Bundle, e engines.Engine, cfg Config) (*Executor, error) {
	for i, s := range b.Stages {
		if s.Mode != bundle.ModeDense && e.Mask() == nil {
			return nil, fmt.Errorf("bundle %s: stage %d is %s but the engine has no mask tensor", b.Dir, i, s.Mode)
		}
	}
	h, w := b.OutputSize()
	x := &Executor{
		bundle:    b,
		engine:    e,
		cfg:       cfg,
		h:         h,
		w:         w,
		merged:    make([]float32, b.Channels()*h*w),
		conf:      make([]float32, h*w),
		scratch:   make([]float32, h*w),
		mask:      make([]uint8, h*w),
		maskFloat: make([]float32, h*w),
		exits:     make([]Exit, 0, len(b.Stages)),
		sparse:    make([]*sparseStage, len(b.Stages)),
	}
	if cfg.Masks != nil && len(cfg.Masks) != len(b.Stages) {
		return nil, fmt.Errorf("bundle %s: %d replacement masks for %d stages", b.Dir, len(cfg.Masks), len(b.Stages))
	}
	for i, m := range cfg.Masks {
		if m != nil && len(m) != h*w {
			return nil, fmt.Errorf("bundle %s: replacement mask of stage %d has %d pixels, want %dx%d", b.Dir, i, len(m), h, w)
		}
	}
	if b.Confidence.Criterion == bundle.CriterionHeatmapPeak {
		x.crit = masking.HeatmapPeak
	}
	x.SetThreshold(b.Confidence.Threshold)
	x.SetHardDeadline(cfg.HardDeadline)
	for i, s := range b.Stages {
		if s.Mode == bundle.ModeSparse {
			var err error
			if x.sparse[i], err = newSparseStage(b, i, e); err != nil {
				return nil, fmt.Errorf("bundle %s: %w", b.Dir, err)
			}
		}
		x.adaptive = x.adaptive || s.Mode != bundle.ModeDense
		var convs []masking.MaskedConvs
		for key, m := range s.MACs.Masked {
			stride, _ := strconv.Atoi(key) // validated by bundle
			convs = append(convs, masking.MaskedConvs{
				Height: b.Input.Height() / stride, Width: b.Input.Width() / stride,
				MACs: m.MACs, OutChannels: m.OutChannels,
			})
		}
		x.masked = append(x.masked, convs)
	}
	return x, nil
}

// Image is the engine's input tensor, to be filled before Run.
func (x *Executor) Image() []float32 { return x.engine.Image() }

// SetThreshold changes the confidence threshold from the next frame on. It
// is safe to call from any goroutine.
func (x *Executor) SetThreshold(t float32) { x.threshold.Store(math.Float32bits(t)) }

// Threshold is the confidence threshold in force.
func (x *Executor) Threshold() float32 { return math.Float32frombits(x.threshold.Load()) }

// SetDispatch changes how sparse stages choose their path from the next
// stage on (DispatchAuto by default). It is safe to call from any goroutine.
func (x *Executor) SetDispatch(d Dispatch) { x.dispatch.Store(int32(d)) }

// SetHardDeadline changes Config.HardDeadline from the next frame on; it is
// safe to call from any goroutine. Zero or negative disables it.
func (x *Executor) SetHardDeadline(d time.Duration) { x.hardStop.Store(int64(d)) }

// ErrBadLogits is wrapped when a stage's output holds NaN or Inf.
var ErrBadLogits = errors.New("logits hold NaN or Inf")

// Run runs one frame whose image is already in Image(). On error the result
// still holds the exits that finished, with reason error.
func (x *Executor) Run(ctx context.Context) (Result, error) {
	start := time.Now()
	threshold := x.Threshold()
	frameCtx := ctx
	if d := time.Duration(x.hardStop.Load()); d > 0 {
		var cancel context.CancelFunc
		frameCtx, cancel = context.WithDeadline(ctx, start.Add(d))
		defer cancel()
	}
	if x.cfg.Policy != nil {
		x.cfg.Policy.StartFrame(start)
	}
	x.exits = x.exits[:0]
	res := Result{Merged: x.merged, Mask: x.mask}
	masking.Fill(x.mask)
	var energy, gmacs float64
	for i, s := range x.bundle.Stages {
		if i > 0 {
			if err := ctx.Err(); err != nil {
				res.Exits, res.Halt = x.exits, ReasonError
				return res, err
			}
			if s.Mode == bundle.ModeDense {
				masking.Fill(x.mask) // a dense stage computes every pixel
			} else if i < len(x.cfg.Masks) && x.cfg.Masks[i] != nil {
				copy(x.mask, x.cfg.Masks[i])
			}
			active := masking.Fraction(x.mask)
			if active == 0 {
				res.Exits, res.Halt = x.exits, ReasonAllConfident
				return res, nil
			}
			if x.cfg.Policy != nil {
				d := x.cfg.Policy.Continue(Progress{
					Next: i, Stages: len(x.bundle.Stages), Start: start,
					Elapsed: time.Since(start), ActiveFraction: active, EnergyJ: energy,
				})
				if !d.Continue {
					res.Exits, res.Halt = x.exits, d.Reason
					return res, nil
				}
			}
		}
		t0 := time.Now()
		runCtx := frameCtx
		if i == 0 {
			runCtx = ctx // exit 1 is the least a frame returns
		}
		ran, active, err := x.runStage(runCtx, i)
		if err != nil {
			res.Exits = x.exits
			if i > 0 && ctx.Err() == nil && errors.Is(frameCtx.Err(), context.DeadlineExceeded) {
				res.Halt = ReasonDeadline
				return res, nil
			}
			res.Halt = ReasonError
			return res, fmt.Errorf("stage %q: %w", s.Name, err)
		}
		stageMACs := x.stageMACs(i)
		logits := x.engine.Logits(i)
		if !masking.Finite(logits) {
			res.Exits, res.Halt = x.exits, ReasonError
			return res, fmt.Errorf("stage %q: %w", s.Name, ErrBadLogits)
		}
		needMask := x.adaptive && i < len(x.bundle.Stages)-1
		switch {
		case i == 0:
			copy(x.merged, logits)
			if needMask {
				masking.Confidence(x.conf, x.scratch, x.merged, x.crit)
			}
		case needMask:
			masking.MergeConfidence(x.merged, logits, x.maskFloat, x.conf, x.scratch, x.crit)
		default:
			masking.Merge(x.merged, logits, x.maskFloat)
		}
		if needMask {
			masking.Update(x.mask, x.conf, x.crit, threshold)
		}
		t1 := time.Now()
		gmacs += stageMACs / gmac
		ex := Exit{
			Exit: i + 1, Stage: t1.Sub(t0), Elapsed: t1.Sub(start), Frozen: 1 - active,
			GMACs: gmacs, Provider: x.engine.Provider(i), Ran: ran,
		}
		if x.cfg.Meter != nil {
			if j, src, ok := x.cfg.Meter.StageEnergy(t0, t1, stageMACs/gmac); ok {
				ex.EnergyJ, ex.EnergySource = j, src
				energy += j
			}
		}
		x.exits = append(x.exits, ex)
		if x.cfg.Policy != nil {
			x.cfg.Policy.StageDone(StageCost{
				Stage: i, ActiveFraction: active, Duration: ex.Stage,
				EnergyJ: ex.EnergyJ, EnergySource: ex.EnergySource, GMACs: stageMACs / gmac,
			})
		}
		if x.cfg.OnExit != nil {
			x.cfg.OnExit(ex, x.merged, x.mask)
		}
	}
	res.Exits, res.Halt = x.exits, ReasonLastExit
	return res, nil
}

// runStage runs stage i for the current mask and returns how it ran and
// the fraction of pixels it computed. It leaves in x.maskFloat the mask that
// copy aggregation uses.
func (x *Executor) runStage(ctx context.Context, i int) (ran string, active float64, err error) {
	active = masking.Fraction(x.mask)
	switch x.bundle.Stages[i].Mode {
	case bundle.ModeDense:
		masking.ToFloat(x.maskFloat, x.mask)
		return bundle.ModeDense, active, x.engine.Run(ctx, i)
	case bundle.ModeMasked:
		masking.ToFloat(x.maskFloat, x.mask)
		copy(x.engine.Mask(), x.maskFloat)
		return bundle.ModeMasked, active, x.engine.Run(ctx, i)
	default: // bundle.ModeSparse; the bundle validated the mode
		ran, err = x.runSparse(ctx, i, active)
		return ran, active, err
	}
}

// stageMACs is stage i's effective MACs for the current mask (masked
// stages: the fraction of the mask it was fed, resized to each layer, with
// the RBF fill; sparse stages: the same fractions, without the fill).
func (x *Executor) stageMACs(i int) float64 {
	macs := float64(x.bundle.Stages[i].MACs.Fixed)
	for _, m := range x.masked[i] {
		a := masking.ResizedFraction(x.mask, x.h, x.w, m.Height, m.Width)
		if x.bundle.Stages[i].Mode == bundle.ModeSparse {
			macs += float64(m.MACs) * a
		} else {
			macs += m.Effective(a)
		}
	}
	return macs
}
