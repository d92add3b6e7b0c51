package anytime

import (
	"context"
	"slices"
	"time"

	"github.com/anytime-edge/edge/bundle"
)

// Calibration is what Calibrate measured for one blocks stage: the median
// time of its dense twin and of its sparse graph at each bucket, and the
// largest bucket for which the sparse graph was faster.
type Calibration struct {
	Stage     int
	Dense     time.Duration
	Blocks    map[int]time.Duration
	MaxBucket int
}

// Calibrate measures, for every blocks stage, the dense twin against the
// sparse graph at each bucket (reps runs each, the first cells active), and
// sets the dispatcher's break-even from it: a frame runs the sparse graph
// only when its bucket was measured faster than the twin. Run it once after
// New, before frames; it overwrites the engine's buffers.
func (x *Executor) Calibrate(ctx context.Context, reps int) ([]Calibration, error) {
	var out []Calibration
	for i, s := range x.bundle.Stages {
		if s.Mode != bundle.ModeBlocks {
			continue
		}
		t := x.tables[i]
		c := Calibration{Stage: i, Blocks: map[int]time.Duration{}}
		for _, bucket := range s.Blocks.Buckets {
			x.activateCells(i, min(bucket, t.Cells()))
			ids, neighbours := x.engine.BlockInputs(i, bucket)
			t.Write(ids, neighbours, bucket)
			d, err := medianRun(reps, func() error { return x.engine.RunBlocks(ctx, i, bucket) })
			if err != nil {
				return out, err
			}
			c.Blocks[bucket] = d
		}
		t.Widen(x.engine.Mask())
		d, err := medianRun(reps, func() error { return x.engine.Run(ctx, i) })
		if err != nil {
			return out, err
		}
		c.Dense = d
		for _, bucket := range s.Blocks.Buckets {
			if c.Blocks[bucket] < c.Dense {
				c.MaxBucket = bucket
			}
		}
		x.SetMaxBlocks(i, c.MaxBucket)
		out = append(out, c)
	}
	return out, nil
}

// TimeBlocks measures blocks stage i with a fraction of its cells active:
// the median of reps runs of its sparse graph (at the bucket holding them;
// zero when no bucket does) and of its dense twin.
func (x *Executor) TimeBlocks(ctx context.Context, i int, fraction float64, reps int) (blocks, dense time.Duration, err error) {
	t := x.tables[i]
	x.activateCells(i, max(1, int(fraction*float64(t.Cells())+0.5)))
	if bucket, ok := t.Bucket(); ok {
		ids, neighbours := x.engine.BlockInputs(i, bucket)
		t.Write(ids, neighbours, bucket)
		if blocks, err = medianRun(reps, func() error { return x.engine.RunBlocks(ctx, i, bucket) }); err != nil {
			return 0, 0, err
		}
	}
	t.Widen(x.engine.Mask())
	dense, err = medianRun(reps, func() error { return x.engine.Run(ctx, i) })
	return blocks, dense, err
}

// activateCells builds stage i's table with the first n cells active.
func (x *Executor) activateCells(i, n int) {
	t := x.tables[i]
	size := x.bundle.Stages[i].Blocks.Size
	cols := x.w / size
	clear(x.mask)
	for id := 0; id < n; id++ {
		r, c := id/cols, id%cols
		x.mask[r*size*x.w+c*size] = 1
	}
	t.Build(x.mask)
}

func medianRun(reps int, run func() error) (time.Duration, error) {
	reps = max(reps, 1)
	ds := make([]time.Duration, 0, reps)
	for range reps {
		t0 := time.Now()
		if err := run(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
