package anytime

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines"
	"github.com/anytime-edge/edge/masking"
)

// Calibration is what Calibrate measured for one stage (medians).
//
// A sparse stage: its sparse graph at computed fractions 1 and
// calibrationLow (Sparse), its masked graph (Masked) and plain dense graph
// (Dense; zero when it has none); BreakEven, the largest fraction at which
// the sparse graph is expected faster than the masked one (the line through
// the two sparse points); Ones, the fastest path for an all-ones mask.
type Calibration struct {
	Stage     int
	Dense     time.Duration
	Masked    time.Duration
	Sparse    map[float64]time.Duration
	BreakEven float64
	Ones      string
}

// calibrationLow is the lower computed fraction a sparse stage is timed at.
const calibrationLow = 0.25

// A sparse stage's calibration runs at most calibrationRounds times the
// requested rounds, while it has taken less than calibrationBudget.
const (
	calibrationRounds = 5
	calibrationBudget = time.Second
)

// Calibrate measures the exact paths of every sparse stage (reps runs
// each, more for a fast stage; with Config.Now) and sets the dispatcher
// from it: a sparse stage runs its sparse graph up to the measured
// break-even fraction and the masked graph above it, an all-ones mask the
// fastest of the three. Run it once after New, before frames; it overwrites
// the engine's buffers.
func (x *Executor) Calibrate(ctx context.Context, reps int) ([]Calibration, error) {
	var out []Calibration
	for i, s := range x.bundle.Stages {
		if s.Mode != bundle.ModeSparse || !x.sparse[i].has(engines.PathSparse) {
			continue // other stages, and sparse ones whose sparse graph is not open, have nothing to calibrate
		}
		c, err := x.calibrateSparse(ctx, i, reps)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// timedPath is one way of running a stage in calibration: prepare sets its
// inputs (untimed), run runs it, median receives its median time.
type timedPath struct {
	prepare func()
	run     func() error
	median  *time.Duration
}

// calibrateSparse times sparse stage i's paths and sets its dispatcher.
// The paths take turns, rep after rep, so a change of load hits them alike.
func (x *Executor) calibrateSparse(ctx context.Context, i, reps int) (Calibration, error) {
	ss := x.sparse[i]
	c := Calibration{Stage: i, Sparse: map[float64]time.Duration{}}
	masks, err := masking.Synthetic(x.h, x.w, []float64{1, calibrationLow}, 1)
	if err != nil {
		return c, err
	}
	sparseAt := func(mask []uint8) func() {
		return func() { ss.tables.Build(mask, ss.bufs, ss.lens) }
	}
	runSparse := func() error { return x.engine.RunSparse(ctx, i, ss.lens) }
	paths := []timedPath{
		{sparseAt(masks[0]), runSparse, new(time.Duration)},
		{sparseAt(masks[1]), runSparse, new(time.Duration)},
	}
	if ss.has(engines.PathMasked) {
		paths = append(paths, timedPath{func() { masking.ToFloat(x.engine.Mask(), masks[1]) }, func() error { return x.engine.Run(ctx, i) }, &c.Masked})
	}
	if ss.has(engines.PathDense) {
		paths = append(paths, timedPath{func() {}, func() error { return x.engine.RunDense(ctx, i) }, &c.Dense})
	}
	now := x.cfg.Now
	if now == nil {
		now = time.Now
	}
	times := make([][]time.Duration, len(paths))
	// reps rounds at least; fast stages get up to calibrationRounds×reps
	// rounds within calibrationBudget, so their medians settle too.
	start := now()
	for round := 0; round < max(reps, 1) || (round < calibrationRounds*reps && now().Sub(start) < calibrationBudget); round++ {
		for k, p := range paths {
			p.prepare()
			t0 := now()
			if err := p.run(); err != nil {
				return c, err
			}
			times[k] = append(times[k], now().Sub(t0))
		}
	}
	for k, p := range paths {
		slices.Sort(times[k])
		*p.median = times[k][len(times[k])/2]
	}
	c.Sparse[1], c.Sparse[calibrationLow] = *paths[0].median, *paths[1].median
	c.BreakEven = 1
	if ss.has(engines.PathMasked) {
		c.BreakEven = breakEven(c.Sparse[calibrationLow], c.Sparse[1], c.Masked)
	}
	c.Ones = RanSparse
	best := c.Sparse[1]
	if ss.has(engines.PathMasked) && c.Masked < best {
		c.Ones, best = RanMasked, c.Masked
	}
	if ss.has(engines.PathDense) && c.Dense <= best {
		c.Ones = RanDense
	}
	ss.breakEven.Store(math.Float64bits(c.BreakEven))
	ones := c.Ones
	ss.ones.Store(&ones)
	return c, nil
}

// breakEven is the computed fraction in [0, 1] at which a sparse graph that
// takes low at calibrationLow and full at 1 (linear in between and beyond)
// takes as long as the masked graph.
func breakEven(low, full, masked time.Duration) float64 {
	slope := float64(full-low) / (1 - calibrationLow)
	at0 := float64(full) - slope
	switch {
	case float64(masked) <= at0:
		return 0
	case slope <= 0 || float64(masked) >= float64(full):
		return 1
	}
	return (float64(masked) - at0) / slope
}
