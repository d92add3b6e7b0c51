package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Recorder defaults.
const (
	DefaultInterval = 50 * time.Millisecond // 20 Hz
	DefaultRingSize = 1200                  // one minute at 20 Hz
)

// RecorderOptions configure a Recorder. Zero fields take the defaults.
type RecorderOptions struct {
	// Interval is the sampling period (default 50 ms, 20 Hz).
	Interval time.Duration
	// Size is the ring buffer's length in readings (default 1200).
	Size int
	// Hold is how far past the newest reading (or before the oldest) power
	// is held constant when integrating (default two intervals).
	Hold   time.Duration
	Logger *slog.Logger
}

// Recorder samples a Sampler on a fixed period into a ring buffer and
// integrates energy over any interval the buffer covers. Run drives it from
// one goroutine; every other method is safe to call concurrently with Run
// and with each other.
type Recorder struct {
	s        Sampler
	interval time.Duration
	hold     time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	ring []Reading
	head int // index of the oldest reading
	n    int
}

// NewRecorder returns a Recorder over s. It does not start sampling; call
// Run. The Recorder does not close s.
func NewRecorder(s Sampler, o RecorderOptions) *Recorder {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Size <= 0 {
		o.Size = DefaultRingSize
	}
	if o.Hold <= 0 {
		o.Hold = 2 * o.Interval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		s:        s,
		interval: o.Interval,
		hold:     o.Hold,
		log:      o.Logger.With("component", "power"),
		ring:     make([]Reading, o.Size),
	}
}

// Run samples until ctx is done, then returns ctx's error. A failed sample is
// logged (once per run of consecutive failures) and skipped.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		rd, err := r.s.Sample(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if !failing {
				r.log.Warn("power sample failed", "err", err)
			}
			failing = true
		default:
			if failing {
				r.log.Info("power sampling recovered")
			}
			failing = false
			r.Add(rd)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Add appends a reading, dropping the oldest when the ring is full. A
// reading older than the newest one is dropped: the ring stays in time
// order. Values outside physical bounds are made absent first
// (DropImplausible), and so is an energy counter that rose faster than
// MaxPowerW since the previous reading.
func (r *Recorder) Add(rd Reading) {
	rd.Missing = slices.Clone(rd.Missing) // not the caller's array
	rd.DropImplausible()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n > 0 && rd.Time.Before(r.at(r.n-1).Time) {
		return
	}
	if r.n > 0 && rd.EnergyJ.OK() && r.at(r.n-1).EnergyJ.OK() {
		prev := r.at(r.n - 1)
		dt := rd.Time.Sub(prev.Time).Seconds()
		if rise := rd.EnergyJ.V - prev.EnergyJ.V; rise > MaxPowerW*max(dt, 0)+1 {
			rd.Miss("energy_j", fmt.Sprintf("counter rose %g J in %.3g s (over %g W)", rise, dt, MaxPowerW))
			rd.EnergyJ = Value{}
		}
	}
	if r.n < len(r.ring) {
		r.ring[(r.head+r.n)%len(r.ring)] = rd
		r.n++
		return
	}
	r.ring[r.head] = rd
	r.head = (r.head + 1) % len(r.ring)
}

func (r *Recorder) at(i int) *Reading { return &r.ring[(r.head+i)%len(r.ring)] }

// Latest returns the newest reading.
func (r *Recorder) Latest() (Reading, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return Reading{}, false
	}
	return *r.at(r.n - 1), true
}

// Readings returns a copy of the buffered readings, oldest first.
func (r *Recorder) Readings() []Reading {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Reading, r.n)
	for i := range out {
		out[i] = *r.at(i)
	}
	return out
}

// EnergyBetween returns the energy used between t0 and t1: the difference
// of the hardware counter where every reading in reach has one, otherwise
// the trapezoid integral of total power. It holds the newest (oldest) power
// for up to the Hold option past the buffer's ends; ok is false beyond that.
func (r *Recorder) EnergyBetween(t0, t1 time.Time) (float64, Source, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// From the last reading at or before t0 to the first at or after t1.
	lo, hi := 0, r.n-1
	for i := 0; i < r.n; i++ {
		if !r.at(i).Time.After(t0) {
			lo = i
		}
	}
	for i := r.n - 1; i >= 0; i-- {
		if !r.at(i).Time.Before(t1) {
			hi = i
		}
	}
	pts := make([]point, 0, max(hi-lo+1, 0))
	for i := lo; i <= hi; i++ {
		rd := r.at(i)
		pts = append(pts, point{t: rd.Time, w: rd.TotalW, e: rd.EnergyJ})
	}
	return integrate(pts, t0, t1, r.hold)
}

// StageEnergy implements the executor's Meter: the energy between start and
// end. When the sampler can attribute work itself (the Estimator), it is
// asked instead, since readings alone cannot see gmacs.
func (r *Recorder) StageEnergy(start, end time.Time, gmacs float64) (float64, Source, bool) {
	if m, ok := r.s.(interface {
		StageEnergy(start, end time.Time, gmacs float64) (float64, Source, bool)
	}); ok {
		return m.StageEnergy(start, end, gmacs)
	}
	return r.EnergyBetween(start, end)
}

// point is one reading reduced to what integration needs.
type point struct {
	t time.Time
	w Value // total power, W
	e Value // cumulative energy, J
}

// errNoCover is why integrate gives up; kept for tests.
var errNoCover = errors.New("readings do not cover the interval")

// integrate computes the energy between t0 and t1 from pts (time-ordered).
// It prefers the energy counter, interpolated linearly between readings, and
// falls back to the trapezoid of power. Beyond the last reading the last
// power is held for up to hold; before the first, the first.
func integrate(pts []point, t0, t1 time.Time, hold time.Duration) (float64, Source, bool) {
	if !t1.After(t0) || len(pts) == 0 {
		return 0, "", false
	}
	if j, src, err := integrateCounter(pts, t0, t1, hold); err == nil {
		return j, src, true
	}
	j, src, err := integratePower(pts, t0, t1, hold)
	return j, src, err == nil
}

func integrateCounter(pts []point, t0, t1 time.Time, hold time.Duration) (float64, Source, error) {
	for i, p := range pts {
		if !p.e.OK() {
			return 0, "", errNoCover
		}
		if i > 0 && p.e.V < pts[i-1].e.V {
			return 0, "", errors.New("energy counter went backwards")
		}
	}
	e0, ok0 := counterAt(pts, t0, hold)
	e1, ok1 := counterAt(pts, t1, hold)
	if !ok0 || !ok1 {
		return 0, "", errNoCover
	}
	return e1 - e0, worst(pts, func(p point) Source { return p.e.Source }), nil
}

// counterAt interpolates the energy counter at t; past the newest reading it
// extrapolates with that reading's power, or the last segment's slope.
func counterAt(pts []point, t time.Time, hold time.Duration) (float64, bool) {
	first, last := pts[0], pts[len(pts)-1]
	switch {
	case t.Before(first.t):
		return 0, false
	case t.After(last.t):
		if t.Sub(last.t) > hold {
			return 0, false
		}
		w := 0.0
		switch {
		case last.w.OK():
			w = last.w.V
		case len(pts) > 1:
			prev := pts[len(pts)-2]
			if d := last.t.Sub(prev.t).Seconds(); d > 0 {
				w = (last.e.V - prev.e.V) / d
			}
		default:
			return 0, false
		}
		return last.e.V + w*t.Sub(last.t).Seconds(), true
	}
	return interpolate(pts, t, func(p point) float64 { return p.e.V }), true
}

func integratePower(pts []point, t0, t1 time.Time, hold time.Duration) (float64, Source, error) {
	pw := pts[:0:0]
	for _, p := range pts {
		if p.w.OK() {
			pw = append(pw, p)
		}
	}
	if len(pw) == 0 {
		return 0, "", errNoCover
	}
	if pw[0].t.Sub(t0) > hold || t1.Sub(pw[len(pw)-1].t) > hold {
		return 0, "", errNoCover
	}
	// Breakpoints: t0, every reading strictly inside, t1. Power is linear
	// between readings and constant outside them, so the trapezoid over the
	// breakpoints is exact for that piecewise-linear power.
	ts := []time.Time{t0}
	for _, p := range pw {
		if p.t.After(t0) && p.t.Before(t1) {
			ts = append(ts, p.t)
		}
	}
	ts = append(ts, t1)
	j := 0.0
	for i := 1; i < len(ts); i++ {
		j += 0.5 * (powerAt(pw, ts[i-1]) + powerAt(pw, ts[i])) * ts[i].Sub(ts[i-1]).Seconds()
	}
	return j, worst(pw, func(p point) Source { return p.w.Source }), nil
}

// powerAt is the power at t: linear between the readings of pw, constant
// outside them.
func powerAt(pw []point, t time.Time) float64 {
	if !t.After(pw[0].t) {
		return pw[0].w.V
	}
	return interpolate(pw, t, func(p point) float64 { return p.w.V })
}

// interpolate returns v linearly interpolated at t between the two readings
// of pts around it (the later one's v when they share a time), or the last
// reading's v past them all. t is not before pts[0].
func interpolate(pts []point, t time.Time, v func(point) float64) float64 {
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		if t.After(b.t) {
			continue
		}
		d := b.t.Sub(a.t).Seconds()
		if d <= 0 {
			return v(b)
		}
		f := t.Sub(a.t).Seconds() / d
		return v(a) + f*(v(b)-v(a))
	}
	return v(pts[len(pts)-1])
}

// worst returns the weakest source among pts: an estimate anywhere makes the
// result an estimate, so a measurement is never claimed for it.
func worst(pts []point, src func(point) Source) Source {
	out := Source("")
	for _, p := range pts {
		s := src(p)
		if s == SourceEstimate {
			return s
		}
		if out == "" {
			out = s
		}
	}
	return out
}
