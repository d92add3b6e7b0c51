package power

import (
	"fmt"
	"math"
	"time"
)

// StageSeed is what the bundle says about one stage's work, in GMACs
// (MACs/2^30): Fixed does not depend on the mask, Masked is the part at
// active fraction 1 that scales with it. A stage in dense mode has all its
// work in Fixed.
type StageSeed struct {
	FixedGMACs  float64
	MaskedGMACs float64
}

// DeviceSeed turns GMACs into first guesses of time and energy before any
// stage has been observed.
type DeviceSeed struct {
	// GMACsPerSecond is the engine's throughput.
	GMACsPerSecond float64
	// JoulesPerGMAC and IdleW are as in EstimateModel.
	JoulesPerGMAC float64
	IdleW         float64
}

// Prediction is the cost model's forecast of one stage: means and standard
// deviations of its time and energy.
type Prediction struct {
	Time     time.Duration
	TimeSD   time.Duration
	EnergyJ  float64
	EnergySD float64
	// Observed is how many times the stage's time has been observed, and
	// EnergyObserved its energy; forecasts with few are seed-driven.
	Observed, EnergyObserved int
}

// CostModel predicts each stage's time and energy as linear functions of the
// active fraction a (cost = c0 + c1·a), fitted online by exponentially
// weighted least squares, so it follows the device as clocks and heat
// change. Until a stage has been observed it predicts from the seed. Not
// safe for concurrent use; the Policy guards it.
//
// Observations are kept relative to a device-wide scale: the running mean
// ratio of measured to seeded cost over all stages. A change that affects
// every stage (clocks dropping under throttling, a faster engine than the
// seed assumed) is learned from whichever stages run and moves the forecast
// of stages that have not run lately too; each stage's own fit keeps its
// shape.
type CostModel struct {
	stages         []stageModel
	decay          float64
	timeS, energyS scale
}

// scale is an exponentially weighted mean of measured/seeded cost.
type scale struct{ sum, w float64 }

func (s *scale) value() float64 {
	if s.w == 0 {
		return 1
	}
	return s.sum / s.w
}

func (s *scale) observe(ratio, decay float64) {
	if ratio <= 0 || math.IsNaN(ratio) || math.IsInf(ratio, 0) {
		return
	}
	s.sum = decay*s.sum + ratio
	s.w = decay*s.w + 1
}

type stageModel struct {
	time, energy line
	lastA        float64 // the last active fraction seen (1 until then)
}

// DefaultHalfLife is the number of frames after which an observation's
// weight in the cost model has halved.
const DefaultHalfLife = 12

// NewCostModel seeds a model for len(seeds) stages. halfLife (in
// observations of a stage; DefaultHalfLife when ≤ 0) sets how fast old
// observations are forgotten.
func NewCostModel(seeds []StageSeed, dev DeviceSeed, halfLife float64) (*CostModel, error) {
	if len(seeds) == 0 {
		return nil, fmt.Errorf("cost model: no stages")
	}
	if !(dev.GMACsPerSecond > 0) || math.IsInf(dev.GMACsPerSecond, 0) {
		return nil, fmt.Errorf("cost model: gmacs per second %v: want a finite value > 0", dev.GMACsPerSecond)
	}
	if dev.JoulesPerGMAC < 0 || dev.IdleW < 0 {
		return nil, fmt.Errorf("cost model: joules per gmac %v, idle W %v: want ≥ 0", dev.JoulesPerGMAC, dev.IdleW)
	}
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	m := &CostModel{stages: make([]stageModel, len(seeds)), decay: math.Pow(0.5, 1/halfLife)}
	for i, s := range seeds {
		if s.FixedGMACs < 0 || s.MaskedGMACs < 0 {
			return nil, fmt.Errorf("cost model: stage %d: fixed %v, masked %v GMACs: want ≥ 0", i, s.FixedGMACs, s.MaskedGMACs)
		}
		t0 := s.FixedGMACs / dev.GMACsPerSecond
		t1 := s.MaskedGMACs / dev.GMACsPerSecond
		m.stages[i] = stageModel{
			time:   line{p0: t0, p1: t1},
			energy: line{p0: dev.JoulesPerGMAC*s.FixedGMACs + dev.IdleW*t0, p1: dev.JoulesPerGMAC*s.MaskedGMACs + dev.IdleW*t1},
			lastA:  1,
		}
	}
	return m, nil
}

// Stages returns the number of stages the model covers.
func (m *CostModel) Stages() int { return len(m.stages) }

// Observe adds one stage's measured cost. energyOK is false when the energy
// is unknown; the time is still learned.
func (m *CostModel) Observe(stage int, a float64, d time.Duration, joules float64, energyOK bool) {
	if stage < 0 || stage >= len(m.stages) {
		return
	}
	a = clamp01(a)
	s := &m.stages[stage]
	s.lastA = a
	y := d.Seconds()
	if seed := s.time.seed(a); seed > 0 {
		m.timeS.observe(y/seed, m.decay)
	}
	s.time.observe(a, y/m.timeS.value(), m.decay)
	if energyOK {
		if seed := s.energy.seed(a); seed > 0 {
			m.energyS.observe(joules/seed, m.decay)
		}
		s.energy.observe(a, joules/m.energyS.value(), m.decay)
	}
}

// Predict forecasts stage's cost at active fraction a. A stage out of range
// predicts zero.
func (m *CostModel) Predict(stage int, a float64) Prediction {
	if stage < 0 || stage >= len(m.stages) {
		return Prediction{}
	}
	a = clamp01(a)
	s := &m.stages[stage]
	t, tsd := s.time.predict(a)
	e, esd := s.energy.predict(a)
	ts, es := m.timeS.value(), m.energyS.value()
	t, tsd, e, esd = t*ts, tsd*ts, e*es, esd*es
	return Prediction{
		Time:           time.Duration(t * float64(time.Second)),
		TimeSD:         time.Duration(tsd * float64(time.Second)),
		EnergyJ:        e,
		EnergySD:       esd,
		Observed:       s.time.n,
		EnergyObserved: s.energy.n,
	}
}

// LastActive returns the active fraction stage last ran at (1 before it
// has run).
func (m *CostModel) LastActive(stage int) float64 {
	if stage < 0 || stage >= len(m.stages) {
		return 1
	}
	return m.stages[stage].lastA
}

// line is y = c0 + c1·a fitted by exponentially weighted least squares with
// the seed (p0, p1) as two light pseudo-observations at a = 0 and a = 1.
// They keep the fit defined when every observation has the same a (the
// slope then stays the seed's, the level follows the data), and fade in
// influence as real observations accumulate.
type line struct {
	p0, p1               float64
	sw, sa, saa, sy, say float64
	n                    int
	resVar               float64 // EW mean squared one-step-ahead residual
	resW                 float64 // EW weight behind resVar
}

// priorWeight is each pseudo-observation's weight, against 1 per real one.
const priorWeight = 0.25

func (l *line) seed(a float64) float64 { return l.p0 + l.p1*a }

func (l *line) coef() (c0, c1 float64) {
	w := priorWeight
	s := l.sw + 2*w
	sa := l.sa + w
	saa := l.saa + w
	sy := l.sy + w*l.p0 + w*(l.p0+l.p1)
	say := l.say + w*(l.p0+l.p1)
	det := s*saa - sa*sa
	if det <= 0 {
		return l.p0, l.p1
	}
	c1 = (s*say - sa*sy) / det
	c0 = (sy - c1*sa) / s
	return c0, c1
}

func (l *line) observe(a, y, decay float64) {
	if math.IsNaN(y) || math.IsInf(y, 0) || y < 0 {
		return
	}
	c0, c1 := l.coef()
	r := y - (c0 + c1*a)
	l.resVar = decay*l.resVar + r*r
	l.resW = decay*l.resW + 1
	l.sw = decay*l.sw + 1
	l.sa = decay*l.sa + a
	l.saa = decay*l.saa + a*a
	l.sy = decay*l.sy + y
	l.say = decay*l.say + a*y
	l.n++
}

// predict returns the mean and a standard deviation. The deviation is the
// residual RMS, but never below a floor that is wide while the stage has
// few observations and 2% of the mean after.
func (l *line) predict(a float64) (mean, sd float64) {
	c0, c1 := l.coef()
	mean = max(c0+c1*a, 0)
	floor := 0.02
	switch {
	case l.n == 0:
		floor = 0.15
	case l.n < 4:
		floor = 0.10
	}
	sd = floor * mean
	if l.resW > 0 {
		sd = max(sd, math.Sqrt(l.resVar/l.resW))
	}
	return mean, sd
}

func clamp01(a float64) float64 {
	switch {
	case a < 0 || math.IsNaN(a):
		return 0
	case a > 1:
		return 1
	}
	return a
}
