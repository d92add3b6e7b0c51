package power

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anytime-edge/edge/anytime"
)

// Margins, in standard deviations of the cost model's forecast.
const (
	// DefaultDeadlineZ makes a deadline miss on the next stage about 1% likely
	// under Gaussian residuals.
	DefaultDeadlineZ = 2.33
	// DefaultEnergyZ is zero: the energy budget's carry-over and the power
	// cap's bucket repay an overshoot on the following frames, and a margin
	// would only bias the mean low.
	DefaultEnergyZ = 0.0
)

// Config builds a Policy.
type Config struct {
	// Stages seeds the cost model, one entry per stage of the bundle; a
	// stage beyond them is forecast like the last one.
	Stages []StageSeed
	// Device converts the seeds into first guesses of time and energy; its
	// IdleW also fills the gaps between frames in the power-cap window when
	// Window is nil.
	Device DeviceSeed
	Limits Limits
	// HalfLife of the cost model in observations (DefaultHalfLife if 0).
	HalfLife float64
	// State supplies temperatures and throttle state (a Recorder). While
	// thermal limits are set and no fresh temperature is known (State nil,
	// no reading yet, a reading older than StaleAfter, or one without a
	// temperature), the policy fails safe: frames halt at exit 1 for the
	// thermal reason, Check.ThermalUnknown says why, and OnThermalUnknown
	// is told.
	State Latest
	// OnThermalUnknown, when set, is called when the policy starts failing
	// safe for want of a temperature (why says what is missing) and when it
	// stops (why is empty). It is called from Continue, outside the
	// policy's lock, and must not block.
	OnThermalUnknown func(why string)
	// Window measures energy for the power cap (a Recorder). Nil, or when it
	// cannot cover the window: the policy's own ledger of stage energies
	// plus Device.IdleW between frames.
	Window EnergyWindow
	// StaleAfter is the age, relative to the frame's clock, beyond which a
	// State reading is stale (default 10 s).
	StaleAfter time.Duration
	// DeadlineZ and EnergyZ are the safety margins (defaults above when
	// zero and negative respectively).
	DeadlineZ, EnergyZ float64
}

// Policy is the halting policy: before each stage it predicts the stage's
// time and energy from an online cost model and continues only if the
// forecast fits every limit. It implements the executor's Policy interface
// (StartFrame, Continue, StageDone), which the executor calls from one
// goroutine; SetLimits and Limits may be called from any goroutine at any
// time.
type Policy struct {
	mu         sync.Mutex
	limits     Limits
	model      *CostModel
	state      Latest
	window     EnergyWindow
	idleW      float64
	staleAfter time.Duration
	zT, zE     float64
	onThermal  func(string)
	thermalWhy string // the last ThermalUnknown reported to onThermal

	frameStart   time.Time
	frameElapsed time.Duration // sum of this frame's stage durations
	frameEnergy  float64
	inFrame      bool
	credit       float64 // energy budget banked from earlier frames (negative: owed)
	unsettled    bool    // the budget changed during this frame: do not bank it
	ledger       []segment
	last         Check

	// Power cap token bucket: energy the cap still allows, refilled at
	// PowerCapW, holding at most powerBurst of cap·window.
	tokens  float64
	bucketT time.Time
}

// powerBurst is the bucket's depth as a fraction of the cap's energy over
// the window (unless one frame needs more; see bucketDepth). Energy over
// any window of length w is then at most cap·w + depth, so the windowed
// average stays within powerBurst of the cap, plus forecast error.
const powerBurst = 0.02

// segment is one stage's energy over its wall time, for the power window.
type segment struct {
	start, end time.Time
	joules     float64
}

// Check describes the policy's last Continue decision, for logs and tests.
type Check struct {
	Stage    int
	Decision anytime.Decision
	Forecast Prediction
	// ThermalExits is the depth the thermal limits allowed (stages when
	// unlimited) and TempC the effective temperature used (0 when none).
	ThermalExits int
	TempC        float64
	// ThermalUnknown is set when thermal limits are set but no fresh
	// temperature is known: why the frame was held to exit 1.
	ThermalUnknown string
	// TokensJ is the power cap's bucket forecast at the end of the stage;
	// negative means the cap would be broken (0 without a power cap).
	TokensJ float64
	// AllowanceJ is the frame's energy allowance: budget plus carried
	// credit (0 without a budget).
	AllowanceJ float64
}

// NewPolicy returns a Policy for cfg.
func NewPolicy(cfg Config) (*Policy, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	m, err := NewCostModel(cfg.Stages, cfg.Device, cfg.HalfLife)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p := &Policy{
		limits:     cfg.Limits,
		model:      m,
		state:      cfg.State,
		window:     cfg.Window,
		idleW:      cfg.Device.IdleW,
		staleAfter: cfg.StaleAfter,
		zT:         cfg.DeadlineZ,
		zE:         cfg.EnergyZ,
		onThermal:  cfg.OnThermalUnknown,
	}
	if p.staleAfter <= 0 {
		p.staleAfter = 10 * time.Second
	}
	if p.zT <= 0 {
		p.zT = DefaultDeadlineZ
	}
	if p.zE < 0 {
		p.zE = DefaultEnergyZ
	}
	return p, nil
}

// Limits returns the current limits.
func (p *Policy) Limits() Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits
}

// SetLimits replaces the limits; the next decision uses them. A changed
// energy budget drops the carried credit.
func (p *Policy) SetLimits(l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.EnergyBudgetJ != p.limits.EnergyBudgetJ {
		// The bank restarts: the frame in progress was planned against
		// the old budget and is not settled against the new one.
		p.credit, p.unsettled = 0, true
	}
	if l.PowerCapW != p.limits.PowerCapW || l.window() != p.limits.window() {
		p.bucketT = time.Time{}
	}
	p.limits = l
	return nil
}

// LastCheck returns the details of the last Continue decision.
func (p *Policy) LastCheck() Check {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Predict returns the cost model's forecast for stage at active fraction a.
func (p *Policy) Predict(stage int, a float64) Prediction {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.model.Predict(stage, a)
}

// StartFrame begins a frame at start, settling the previous frame's energy
// against the budget.
func (p *Policy) StartFrame(start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeFrame()
	p.frameStart, p.frameElapsed, p.frameEnergy, p.inFrame = start, 0, 0, true
	p.refill(start)
}

// bucketDepth is the power cap's burst allowance: powerBurst of cap·window,
// but at least one full-depth frame's forecast energy, or no frame could
// ever go deeper than the cap's instantaneous rate allows.
func (p *Policy) bucketDepth() float64 {
	frame := 0.0
	for k := 0; k < p.model.Stages(); k++ {
		frame += p.model.Predict(k, p.model.LastActive(k)).EnergyJ
	}
	return max(powerBurst*p.limits.PowerCapW*p.limits.window().Seconds(), frame)
}

// refill brings the power-cap bucket up to now: it gains cap·Δt and loses
// the energy used since the last refill.
func (p *Policy) refill(now time.Time) {
	capW := p.limits.PowerCapW
	if capW <= 0 {
		return
	}
	depth := p.bucketDepth()
	if p.bucketT.IsZero() {
		p.tokens, p.bucketT = depth, now
		return
	}
	if !now.After(p.bucketT) {
		return
	}
	used := p.windowEnergy(p.bucketT, now)
	// The debt is bounded by one window's allowance: an overshoot beyond
	// it (a meter fault) delays frames for at most about one window, not
	// for as long as the absurd energy would take to repay.
	p.tokens = max(min(depth, p.tokens+capW*now.Sub(p.bucketT).Seconds()-used), -capW*p.limits.window().Seconds())
	p.bucketT = now
}

// closeFrame banks the finished frame's unused (or overspent) budget. The
// bank holds at most two of the costliest stage's forecast either way; a
// frame may borrow from it at most borrowShare of the cheapest stage's, so
// no frame exceeds the budget by more than one stage's cost, while nothing
// a later frame could use is thrown away.
func (p *Policy) closeFrame() {
	if !p.inFrame {
		return
	}
	p.inFrame = false
	b := p.limits.EnergyBudgetJ
	if b <= 0 || p.unsettled {
		p.unsettled = false
		p.credit = 0
		return
	}
	_, most := p.stageEnergyRange()
	p.credit = min(max(p.credit+b-p.frameEnergy, -2*most), 2*most)
}

// borrowShare is the fraction of the cheapest stage's forecast energy a
// frame may borrow from the bank; the rest is headroom for forecast error.
const borrowShare = 0.7

// stageEnergyRange returns the least and the greatest forecast energy of the
// stages after the first that have been observed, at the active fractions
// they last ran at; zeros before any has.
func (p *Policy) stageEnergyRange() (least, most float64) {
	n := p.model.Stages()
	if n < 2 {
		return 0, 0
	}
	least = math.Inf(1)
	for k := 1; k < n; k++ {
		fc := p.model.Predict(k, p.model.LastActive(k))
		if fc.EnergyObserved == 0 {
			continue
		}
		least, most = min(least, fc.EnergyJ), max(most, fc.EnergyJ)
	}
	if most == 0 {
		return 0, 0
	}
	return least, most
}

// StageDone records what a stage cost and teaches the cost model.
func (p *Policy) StageDone(c anytime.StageCost) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// An energy no device could have drawn over the stage is a meter
	// fault: the stage counts as unmetered rather than teaching the model
	// and the budget an absurd cost.
	energyOK := c.EnergySource != "" && c.EnergyJ >= 0 && c.EnergyJ <= MaxPowerW*c.Duration.Seconds()
	if !energyOK {
		c.EnergyJ = 0
	}
	p.model.Observe(c.Stage, c.ActiveFraction, c.Duration, c.EnergyJ, energyOK)
	start := p.frameStart.Add(p.frameElapsed)
	p.frameElapsed += c.Duration
	if energyOK {
		p.frameEnergy += c.EnergyJ
	}
	p.ledger = append(p.ledger, segment{start: start, end: start.Add(c.Duration), joules: c.EnergyJ})
	// Keep the ledger to the longest window a limit change could ask for
	// soon: twice the current one.
	horizon := start.Add(c.Duration - 2*p.limits.window())
	drop := 0
	for drop < len(p.ledger) && p.ledger[drop].end.Before(horizon) {
		drop++
	}
	if drop > 0 {
		p.ledger = append(p.ledger[:0], p.ledger[drop:]...)
	}
}

// Continue decides whether stage pr.Next runs. Hard limits (thermal hard
// limit, deadline) are checked first, then the maximum exit, the soft
// thermal limit, the energy budget and the power cap; the first that the
// forecast breaks is the reason.
func (p *Policy) Continue(pr anytime.Progress) anytime.Decision {
	p.mu.Lock()
	d := p.decide(pr)
	why := p.last.ThermalUnknown
	changed := why != p.thermalWhy
	p.thermalWhy = why
	p.mu.Unlock()
	if changed && p.onThermal != nil {
		p.onThermal(why)
	}
	return d
}

// decide is Continue under the lock.
func (p *Policy) decide(pr anytime.Progress) anytime.Decision {
	l := p.limits
	next := pr.Next
	stages := pr.Stages
	if stages <= 0 {
		stages = p.model.Stages()
	}
	c := Check{Stage: next, ThermalExits: stages}
	decide := func(d anytime.Decision) anytime.Decision {
		c.Decision = d
		p.last = c
		return d
	}
	if next >= stages {
		return decide(anytime.Decision{Reason: anytime.ReasonLastExit})
	}
	// A stage beyond the seeds (a bundle/seed mismatch) is forecast like
	// the last seeded stage rather than as free.
	fc := p.model.Predict(min(next, p.model.Stages()-1), pr.ActiveFraction)
	c.Forecast = fc
	start := pr.Start
	if start.IsZero() {
		start = p.frameStart
	}
	now := start.Add(pr.Elapsed)

	exits, hard, tempC := stages, false, 0.0
	if l.ThermalSoftC > 0 || l.ThermalHardC > 0 {
		t, throttled, why := p.temperature(now)
		if why != "" {
			// Fail safe: without a temperature the device may be hot.
			exits, c.ThermalUnknown = 1, why
		} else {
			exits, hard = l.ThermalExits(stages, t, throttled)
			tempC = t
		}
	}
	c.ThermalExits, c.TempC = exits, tempC
	if hard {
		return decide(anytime.Decision{Reason: anytime.ReasonThermal})
	}
	if l.Deadline > 0 {
		need := pr.Elapsed + fc.Time + time.Duration(p.zT*float64(fc.TimeSD))
		if need > l.Deadline {
			return decide(anytime.Decision{Reason: anytime.ReasonDeadline})
		}
	}
	if l.MaxExit > 0 && next+1 > l.MaxExit {
		return decide(anytime.Decision{Reason: anytime.ReasonMaxExit})
	}
	if next+1 > exits {
		return decide(anytime.Decision{Reason: anytime.ReasonThermal})
	}
	if b := l.EnergyBudgetJ; b > 0 {
		used := p.frameEnergy
		if pr.EnergyJ > 0 {
			used = pr.EnergyJ
		}
		least, _ := p.stageEnergyRange()
		c.AllowanceJ = b + min(p.credit, borrowShare*least)
		if used+fc.EnergyJ+p.energyMargin(fc) > c.AllowanceJ {
			return decide(anytime.Decision{Reason: anytime.ReasonEnergyBudget})
		}
	}
	if capW := l.PowerCapW; capW > 0 {
		p.refill(now)
		c.TokensJ = p.tokens + capW*fc.Time.Seconds() - fc.EnergyJ - p.energyMargin(fc)
		if c.TokensJ < 0 {
			return decide(anytime.Decision{Reason: anytime.ReasonPowerCap})
		}
	}
	return decide(anytime.Decision{Continue: true})
}

// temperature returns the hottest temperature at now and whether the
// hardware reports thermal or power throttling, or why it is not known: no
// State, no reading yet, a stale reading or one without a temperature. The
// reasons are stable strings, so a change of them is a change of state.
func (p *Policy) temperature(now time.Time) (tempC float64, throttled bool, why string) {
	if p.state == nil {
		return 0, false, "no temperature source"
	}
	r, ok := p.state.Latest()
	switch {
	case !ok:
		return 0, false, "no reading yet"
	case !r.Time.IsZero() && now.Sub(r.Time) > p.staleAfter:
		return 0, false, fmt.Sprintf("the last reading is older than %v", p.staleAfter)
	}
	t, _, haveT := r.HottestC()
	if !haveT {
		return 0, false, "no temperature in the last reading"
	}
	throttled = r.Throttle != nil && r.Throttle.Active && (r.Throttle.Thermal || r.Throttle.Power)
	return t, throttled, ""
}

// energyMargin is the safety margin on a stage's forecast energy: EnergyZ
// standard deviations, and at least one while the stage's energy has been
// observed fewer than four times (the forecast is then mostly seed).
func (p *Policy) energyMargin(fc Prediction) float64 {
	z := p.zE
	if fc.EnergyObserved < 4 {
		z = max(z, 1)
	}
	return z * fc.EnergySD
}

// windowEnergy is the energy used from t0 to t1: measured by the Window
// when it covers the interval, else from the ledger with idle power in the
// gaps.
func (p *Policy) windowEnergy(t0, t1 time.Time) float64 {
	if !t1.After(t0) {
		return 0
	}
	if p.window != nil {
		if j, _, ok := p.window.EnergyBetween(t0, t1); ok {
			return j
		}
	}
	j, covered := 0.0, 0.0
	for _, s := range p.ledger {
		lo, hi := later(s.start, t0), earlier(s.end, t1)
		if !hi.After(lo) {
			continue
		}
		d := hi.Sub(lo).Seconds()
		covered += d
		if span := s.end.Sub(s.start).Seconds(); span > 0 {
			j += s.joules * d / span
		}
	}
	return j + p.idleW*max(t1.Sub(t0).Seconds()-covered, 0)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
