package power

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// EstimateModel is the energy model used where no sensor exists: a stage
// doing g GMACs over t seconds costs IdleW·t + JoulesPerGMAC[provider]·g.
// The default figures are order-of-magnitude guesses; calibrate them with
// Fit against a measured device before trusting absolute joules.
type EstimateModel struct {
	// IdleW is the device's power with nothing running, in watts.
	IdleW float64 `json:"idle_w"`
	// JoulesPerGMAC is the marginal energy of one GMAC (2^30 MACs) per
	// execution provider ("cpu", "cuda", "tensorrt").
	JoulesPerGMAC map[string]float64 `json:"joules_per_gmac"`
}

// DefaultEstimateModel returns uncalibrated guesses: a desktop-class CPU
// host idling at 10 W, and GPU providers two orders of magnitude cheaper per
// GMAC than the CPU.
func DefaultEstimateModel() EstimateModel {
	return EstimateModel{
		IdleW: 10,
		JoulesPerGMAC: map[string]float64{
			"cpu":      0.5,
			"cuda":     0.01,
			"tensorrt": 0.006,
		},
	}
}

// Validate checks the model for a provider.
func (m EstimateModel) Validate(provider string) error {
	if m.IdleW < 0 || math.IsNaN(m.IdleW) || math.IsInf(m.IdleW, 0) {
		return fmt.Errorf("estimate model: idle_w %v: want a finite value ≥ 0", m.IdleW)
	}
	j, ok := m.JoulesPerGMAC[provider]
	if !ok {
		names := make([]string, 0, len(m.JoulesPerGMAC))
		for k := range m.JoulesPerGMAC {
			names = append(names, k)
		}
		sort.Strings(names)
		return fmt.Errorf("estimate model: no joules_per_gmac for provider %q (have %v)", provider, names)
	}
	if j < 0 || math.IsNaN(j) || math.IsInf(j, 0) {
		return fmt.Errorf("estimate model: joules_per_gmac[%q] = %v: want a finite value ≥ 0", provider, j)
	}
	return nil
}

// Calibration is one measured run used to fit an EstimateModel.
type Calibration struct {
	Seconds float64 // wall time
	GMACs   float64 // work done
	Joules  float64 // measured energy
}

// ErrIllConditioned is returned by Fit when the runs cannot separate idle
// power from per-GMAC energy (all runs at the same work rate).
var ErrIllConditioned = errors.New("calibration runs do not separate idle power from per-GMAC energy")

// Fit finds the idle watts and joules per GMAC that best explain runs in
// the least-squares sense (J ≈ idleW·s + jPerGMAC·g). It needs at least two
// runs at different work rates.
func Fit(runs []Calibration) (idleW, jPerGMAC float64, err error) {
	var stt, stg, sgg, sjt, sjg float64
	for i, r := range runs {
		if r.Seconds <= 0 || r.GMACs < 0 || r.Joules < 0 {
			return 0, 0, fmt.Errorf("calibration run %d: seconds %v, gmacs %v, joules %v: want seconds > 0, the rest ≥ 0", i, r.Seconds, r.GMACs, r.Joules)
		}
		stt += r.Seconds * r.Seconds
		stg += r.Seconds * r.GMACs
		sgg += r.GMACs * r.GMACs
		sjt += r.Joules * r.Seconds
		sjg += r.Joules * r.GMACs
	}
	det := stt*sgg - stg*stg
	if len(runs) < 2 || det <= 1e-12*stt*sgg {
		return 0, 0, ErrIllConditioned
	}
	idleW = (sjt*sgg - sjg*stg) / det
	jPerGMAC = (stt*sjg - stg*sjt) / det
	return idleW, jPerGMAC, nil
}

// Estimator is the backend for devices with no power sensor. It is both a
// Sampler (total power and a running energy counter, from the work it was
// told about) and a Meter (stage energy from the model). Every value it
// produces is marked SourceEstimate. Safe for concurrent use.
type Estimator struct {
	idleW, jPerGMAC float64
	provider        string
	now             func() time.Time

	mu      sync.Mutex
	start   time.Time
	workJ   float64 // energy of the work reported so far, above idle
	lastT   time.Time
	lastE   float64
	sampled bool
}

// NewEstimator returns an Estimator for provider under model m. now is the
// clock (time.Now when nil); the counter starts at zero now.
func NewEstimator(m EstimateModel, provider string, now func() time.Time) (*Estimator, error) {
	if err := m.Validate(provider); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Estimator{
		idleW:    m.IdleW,
		jPerGMAC: m.JoulesPerGMAC[provider],
		provider: provider,
		now:      now,
		start:    now(),
	}, nil
}

// StageEnergy returns the model's energy for a stage of gmacs GMACs from
// start to end, and adds its work to the running counter.
func (e *Estimator) StageEnergy(start, end time.Time, gmacs float64) (float64, Source, bool) {
	if end.Before(start) || gmacs < 0 {
		return 0, "", false
	}
	work := e.jPerGMAC * gmacs
	e.mu.Lock()
	e.workJ += work
	e.mu.Unlock()
	return e.idleW*end.Sub(start).Seconds() + work, SourceEstimate, true
}

// Sample implements Sampler: the counter is idle energy since the start
// plus the work reported through StageEnergy, and total power is the
// counter's rate since the previous sample (idle power on the first).
func (e *Estimator) Sample(ctx context.Context) (Reading, error) {
	if err := ctx.Err(); err != nil {
		return Reading{}, err
	}
	t := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	energy := e.idleW*t.Sub(e.start).Seconds() + e.workJ
	w := e.idleW
	if e.sampled {
		if d := t.Sub(e.lastT).Seconds(); d > 0 {
			w = (energy - e.lastE) / d
		}
	}
	e.lastT, e.lastE, e.sampled = t, energy, true
	r := Reading{
		Time:      t,
		Source:    SourceEstimate,
		Device:    "estimate (" + e.provider + ")",
		TotalW:    Measured(w, SourceEstimate),
		TotalFrom: "idle+work",
		EnergyJ:   Measured(energy, SourceEstimate),
	}
	r.Miss("temps", "no sensor: estimate backend")
	r.Miss("throttle", "no sensor: estimate backend")
	return r, nil
}

// Close implements Sampler; it holds nothing.
func (e *Estimator) Close() error { return nil }

// DefaultDeviceSeed returns first guesses of a provider's throughput and
// energy for seeding the cost model before any stage has run: the default
// estimate model's energy, and a throughput typical of the provider on a
// Jetson-class device (cpu 20, cuda 1000, tensorrt 2000 GMAC/s). The cost
// model replaces them with measurements within a few frames.
func DefaultDeviceSeed(provider string) DeviceSeed {
	m := DefaultEstimateModel()
	rate := map[string]float64{"cpu": 20, "cuda": 1000, "tensorrt": 2000}[provider]
	if rate == 0 {
		rate = 20
	}
	j, ok := m.JoulesPerGMAC[provider]
	if !ok {
		j = m.JoulesPerGMAC["cpu"]
	}
	return DeviceSeed{GMACsPerSecond: rate, JoulesPerGMAC: j, IdleW: m.IdleW}
}
