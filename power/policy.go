package power

import (
	"fmt"
	"sync"
	"time"
)

// Margins, in standard deviations of the cost model's forecast.
const (
	// DefaultDeadlineZ makes a deadline miss on the next stage about 1% likely
	// under Gaussian residuals.
	DefaultDeadlineZ = 2.33
	// DefaultEnergyZ is looser: energy overshoots are repaid by the budget's
	// carry-over.
	DefaultEnergyZ = 1.0
)

// Config builds a Policy.
type Config struct {
	// Stages seeds the cost model, one entry per stage of the bundle.
	Stages []StageSeed
	// Device converts the seeds into first guesses of time and energy; its
	// IdleW also fills the gaps between frames in the power-cap window when
	// Window is nil.
	Device DeviceSeed
	Limits Limits
	// HalfLife of the cost model in observations (DefaultHalfLife if 0).
	HalfLife float64
	// State supplies temperatures and throttle state (a Recorder). Nil: the
	// thermal limits have nothing to act on and never halt a frame.
	State Latest
	// Window measures energy for the power cap (a Recorder). Nil, or when it
	// cannot cover the window: the policy's own ledger of stage energies
	// plus Device.IdleW between frames.
	Window EnergyWindow
	// StaleAfter ignores a State reading older than this relative to the
	// frame's clock (default 10 s).
	StaleAfter time.Duration
	// DeadlineZ and EnergyZ are the safety margins (defaults above).
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

	frameStart   time.Time
	frameElapsed time.Duration // sum of this frame's stage durations
	frameEnergy  float64
	inFrame      bool
	credit       float64 // unused energy budget carried from earlier frames
	ledger       []segment
	last         Check
}

// segment is one stage's energy over its wall time, for the power window.
type segment struct {
	start, end time.Time
	joules     float64
}

// Check describes the policy's last Continue decision, for logs and tests.
type Check struct {
	Stage    int
	Decision Decision
	Forecast Prediction
	// ThermalExits is the depth the thermal limits allowed (stages when
	// unlimited) and TempC the effective temperature used (0 when none).
	ThermalExits int
	TempC        float64
	// WindowW is the forecast average power over the window at the end of
	// the stage (0 without a power cap).
	WindowW float64
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
	}
	if p.staleAfter <= 0 {
		p.staleAfter = 10 * time.Second
	}
	if p.zT <= 0 {
		p.zT = DefaultDeadlineZ
	}
	if p.zE <= 0 {
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
		p.credit = 0
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
}

// closeFrame carries the finished frame's unused (or overspent) budget,
// bounded by one stage's forecast cost either way.
func (p *Policy) closeFrame() {
	if !p.inFrame {
		return
	}
	p.inFrame = false
	b := p.limits.EnergyBudgetJ
	if b <= 0 {
		p.credit = 0
		return
	}
	limit := p.creditLimit()
	p.credit = min(max(p.credit+b-p.frameEnergy, -limit), limit)
}

// creditLimit is the mean forecast energy of the stages after the first at
// the active fractions they last ran at: "one stage's cost".
func (p *Policy) creditLimit() float64 {
	n := p.model.Stages()
	if n < 2 {
		return 0
	}
	sum := 0.0
	for k := 1; k < n; k++ {
		sum += p.model.Predict(k, p.model.LastActive(k)).EnergyJ
	}
	return sum / float64(n-1)
}

// StageDone records what a stage cost and teaches the cost model.
func (p *Policy) StageDone(c StageCost) {
	p.mu.Lock()
	defer p.mu.Unlock()
	energyOK := c.EnergySource != ""
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
func (p *Policy) Continue(pr Progress) Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limits
	next := pr.Next
	stages := pr.Stages
	if stages <= 0 {
		stages = p.model.Stages()
	}
	c := Check{Stage: next, ThermalExits: stages}
	decide := func(d Decision) Decision {
		c.Decision = d
		p.last = c
		return d
	}
	if next >= stages {
		return decide(Decision{Reason: ReasonLastExit})
	}
	fc := p.model.Predict(next, pr.ActiveFraction)
	c.Forecast = fc
	start := pr.Start
	if start.IsZero() {
		start = p.frameStart
	}
	now := start.Add(pr.Elapsed)

	exits, hard, tempC := stages, false, 0.0
	if (l.ThermalSoftC > 0 || l.ThermalHardC > 0) && p.state != nil {
		if r, ok := p.state.Latest(); ok && (r.Time.IsZero() || now.Sub(r.Time) <= p.staleAfter) {
			t, _, haveT := r.HottestC()
			throttled := r.Throttle != nil && r.Throttle.Active && (r.Throttle.Thermal || r.Throttle.Power)
			if haveT || throttled {
				if !haveT {
					// No sensor but throttling: start from the band's floor.
					t = l.ThermalSoftC - bandOf(l)
				}
				exits, hard = l.ThermalExits(stages, t, throttled)
				tempC = t
			}
		}
	}
	c.ThermalExits, c.TempC = exits, tempC
	if hard {
		return decide(Decision{Reason: ReasonThermal})
	}
	if l.Deadline > 0 {
		need := pr.Elapsed + fc.Time + time.Duration(p.zT*float64(fc.TimeSD))
		if need > l.Deadline {
			return decide(Decision{Reason: ReasonDeadline})
		}
	}
	if l.MaxExit > 0 && next+1 > l.MaxExit {
		return decide(Decision{Reason: ReasonMaxExit})
	}
	if next+1 > exits {
		return decide(Decision{Reason: ReasonThermal})
	}
	if b := l.EnergyBudgetJ; b > 0 {
		used := p.frameEnergy
		if pr.EnergyJ > 0 {
			used = pr.EnergyJ
		}
		c.AllowanceJ = b + p.credit
		if used+fc.EnergyJ+p.zE*fc.EnergySD > c.AllowanceJ {
			return decide(Decision{Reason: ReasonEnergyBudget})
		}
	}
	if capW := l.PowerCapW; capW > 0 {
		w := l.window()
		end := now.Add(fc.Time)
		past := p.windowEnergy(end.Add(-w), now)
		c.WindowW = (past + fc.EnergyJ + p.zE*fc.EnergySD) / w.Seconds()
		if c.WindowW > capW {
			return decide(Decision{Reason: ReasonPowerCap})
		}
	}
	return decide(Decision{Continue: true})
}

func bandOf(l Limits) float64 {
	if l.ThermalBandC > 0 {
		return l.ThermalBandC
	}
	return DefaultThermalBandC
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
