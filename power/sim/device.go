package sim

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/anytime-edge/edge/power"
)

// Epoch is the simulated clock's zero.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// StageSpec is one simulated stage: its work in GMACs (fixed, plus masked
// scaled by the active fraction) and the device power while it runs.
type StageSpec struct {
	FixedGMACs  float64
	MaskedGMACs float64
	PowerW      float64
}

// Spec describes a simulated device.
type Spec struct {
	Stages []StageSpec
	// GMACsPerSecond is the true throughput (the policy's seed may differ).
	GMACsPerSecond float64
	IdleW          float64
	// TimeNoise and PowerNoise are the log-normal sigmas of a stage's time
	// and power.
	TimeNoise, PowerNoise float64
	// Thermal model: dT/dt = (AmbientC + CPerW·P − T)/Tau.
	AmbientC float64
	CPerW    float64
	Tau      time.Duration
	// Above ThrottleC the clocks drop: stages take ThrottleSlowdown times
	// longer and the device reports thermal throttling.
	ThrottleC        float64
	ThrottleSlowdown float64
}

// DefaultSpec is a four-stage ADP-C-like model on a Jetson-class device:
// exits at about 15, 28, 39 and 48 ms, stages drawing 15 W against 5 W
// idle, and a thermal model that settles near 55 °C at full depth and
// 10 fps in 25 °C air.
func DefaultSpec() Spec {
	return Spec{
		Stages: []StageSpec{
			{FixedGMACs: 3.0, PowerW: 15},
			{FixedGMACs: 0.8, MaskedGMACs: 3.2, PowerW: 15},
			{FixedGMACs: 0.8, MaskedGMACs: 4.0, PowerW: 15},
			{FixedGMACs: 0.8, MaskedGMACs: 4.8, PowerW: 15},
		},
		GMACsPerSecond:   200,
		IdleW:            5,
		TimeNoise:        0.05,
		PowerNoise:       0.03,
		AmbientC:         25,
		CPerW:            3,
		Tau:              30 * time.Second,
		ThrottleC:        80,
		ThrottleSlowdown: 1.3,
	}
}

// Seeds returns the stages' GMACs as policy seeds.
func (s Spec) Seeds() []power.StageSeed {
	out := make([]power.StageSeed, len(s.Stages))
	for i, st := range s.Stages {
		out[i] = power.StageSeed{FixedGMACs: st.FixedGMACs, MaskedGMACs: st.MaskedGMACs}
	}
	return out
}

// seg is an interval of constant power.
type seg struct {
	start, end time.Time
	w          float64
	cum        float64 // energy from Epoch to end
}

// Device is a running simulated device. It implements power.Latest and
// power.EnergyWindow. Not safe for concurrent use.
type Device struct {
	spec    Spec
	rng     *rand.Rand
	now     time.Time
	tempC   float64
	ambient float64
	segs    []seg
}

// NewDevice starts a device at Epoch, at ambient temperature, with a seeded
// random source.
func NewDevice(spec Spec, seed uint64) *Device {
	return &Device{
		spec:    spec,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     Epoch,
		tempC:   spec.AmbientC,
		ambient: spec.AmbientC,
	}
}

// Now is the simulated time.
func (d *Device) Now() time.Time { return d.now }

// TempC is the device temperature.
func (d *Device) TempC() float64 { return d.tempC }

// SetAmbient changes the ambient temperature from now on.
func (d *Device) SetAmbient(c float64) { d.ambient = c }

// Throttled reports whether the clocks are throttled.
func (d *Device) Throttled() bool {
	return d.spec.ThrottleC > 0 && d.tempC >= d.spec.ThrottleC
}

// Idle advances the clock to t at idle power.
func (d *Device) Idle(t time.Time) {
	if t.After(d.now) {
		d.draw(t.Sub(d.now), d.spec.IdleW)
	}
}

// RunStage runs stage k at active fraction a and returns its duration and
// energy.
func (d *Device) RunStage(k int, a float64) (time.Duration, float64) {
	st := d.spec.Stages[k]
	gmacs := st.FixedGMACs + st.MaskedGMACs*a
	sec := gmacs / d.spec.GMACsPerSecond * math.Exp(d.rng.NormFloat64()*d.spec.TimeNoise)
	if d.Throttled() {
		sec *= d.spec.ThrottleSlowdown
	}
	w := st.PowerW * math.Exp(d.rng.NormFloat64()*d.spec.PowerNoise)
	dur := time.Duration(sec * float64(time.Second))
	return dur, d.draw(dur, w)
}

// GMACs is stage k's work at active fraction a.
func (d *Device) GMACs(k int, a float64) float64 {
	st := d.spec.Stages[k]
	return st.FixedGMACs + st.MaskedGMACs*a
}

// draw spends dur at w watts, heating the device, and returns the energy.
func (d *Device) draw(dur time.Duration, w float64) float64 {
	j := w * dur.Seconds()
	cum := j
	if n := len(d.segs); n > 0 {
		cum += d.segs[n-1].cum
	}
	end := d.now.Add(dur)
	d.segs = append(d.segs, seg{start: d.now, end: end, w: w, cum: cum})
	eq := d.ambient + d.spec.CPerW*w
	d.tempC = eq + (d.tempC-eq)*math.Exp(-dur.Seconds()/d.spec.Tau.Seconds())
	d.now = end
	return j
}

// energyAt is the energy used from Epoch to t (negative before Epoch, at
// idle power: the device idled before the run).
func (d *Device) energyAt(t time.Time) float64 {
	if !t.After(Epoch) || len(d.segs) == 0 {
		return d.spec.IdleW * t.Sub(Epoch).Seconds()
	}
	i := sort.Search(len(d.segs), func(i int) bool { return !d.segs[i].end.Before(t) })
	if i == len(d.segs) {
		last := d.segs[len(d.segs)-1]
		return last.cum + d.spec.IdleW*t.Sub(last.end).Seconds()
	}
	s := d.segs[i]
	return s.cum - s.w*s.end.Sub(t).Seconds()
}

// EnergyBetween implements power.EnergyWindow exactly, as a hardware counter
// would; it cannot see the future.
func (d *Device) EnergyBetween(t0, t1 time.Time) (float64, power.Source, bool) {
	if t1.Before(t0) || t1.After(d.now) {
		return 0, "", false
	}
	return d.energyAt(t1) - d.energyAt(t0), power.SourceSim, true
}

// Latest implements power.Latest: the temperature and throttle state now.
func (d *Device) Latest() (power.Reading, bool) {
	r := power.Reading{
		Time:   d.now,
		Source: power.SourceSim,
		Device: "sim",
		Temps:  []power.Temp{{Zone: "sim", C: d.tempC, Source: power.SourceSim}},
		Throttle: &power.Throttle{
			Source: power.SourceSim,
		},
	}
	if d.Throttled() {
		r.Throttle.Active, r.Throttle.Thermal = true, true
		r.Throttle.Reasons = []string{"thermal"}
	}
	return r, true
}

// MaxWindowPower returns the highest average power over any window of
// length w that ends between from and the current time. Power is piecewise
// constant, so the maximum is at a window whose leading or trailing edge
// sits on a segment boundary; those are the windows it checks.
func (d *Device) MaxWindowPower(w time.Duration, from time.Time) float64 {
	best := 0.0
	try := func(t time.Time) {
		if t.Before(from) || t.After(d.now) {
			return
		}
		best = max(best, (d.energyAt(t)-d.energyAt(t.Add(-w)))/w.Seconds())
	}
	for _, s := range d.segs {
		try(s.start)
		try(s.end)
		try(s.start.Add(w))
		try(s.end.Add(w))
	}
	return best
}
