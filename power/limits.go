package power

import (
	"fmt"
	"math"
	"time"
)

// Limit defaults, used when the corresponding Limits field is zero.
const (
	DefaultPowerWindow     = 5 * time.Second
	DefaultThermalBandC    = 10.0
	DefaultThrottleDerateC = 5.0
)

// Limits are what the policy holds each frame to. A zero field is no limit
// (or the default, where one is named).
type Limits struct {
	// Deadline is the per-frame time limit, measured from the frame's start.
	Deadline time.Duration `json:"deadline,omitempty"`
	// EnergyBudgetJ is the per-frame energy budget in joules. It is met on
	// average: a frame may borrow unused budget from earlier frames, up to
	// one stage's cost, so the mean tracks the budget and no frame exceeds
	// it by more than about one stage.
	EnergyBudgetJ float64 `json:"energy_budget_j,omitempty"`
	// PowerCapW caps the average power over any PowerWindow (default 5 s),
	// a window that slides across frames and includes the idle time between
	// them. It is enforced as a token bucket refilled at the cap and 2% of
	// cap·window deep (or one full frame's energy if that is more), which
	// bounds every window's average to the cap plus the depth over the
	// window, plus forecast error.
	PowerCapW   float64       `json:"power_cap_w,omitempty"`
	PowerWindow time.Duration `json:"power_window,omitempty"`
	// MaxExit is the deepest exit allowed, 1-based; 0 is all.
	MaxExit int `json:"max_exit,omitempty"`
	// ThermalSoftC: as the hottest sensor climbs through the band of
	// ThermalBandC (default 10 °C) below it, fewer exits are allowed, down
	// to two at the soft limit. ThermalHardC: at or above it, exit 1 only.
	ThermalSoftC float64 `json:"thermal_soft_c,omitempty"`
	ThermalHardC float64 `json:"thermal_hard_c,omitempty"`
	ThermalBandC float64 `json:"thermal_band_c,omitempty"`
	// ThrottleDerateC is added to the temperature while the hardware
	// reports thermal or power throttling (default 5 °C), so throttling
	// derates like heat.
	ThrottleDerateC float64 `json:"throttle_derate_c,omitempty"`
}

// Validate reports the first field that is out of range, by its name.
func (l Limits) Validate() error {
	bad := func(f float64) bool { return f < 0 || math.IsNaN(f) || math.IsInf(f, 0) }
	switch {
	case l.Deadline < 0:
		return fmt.Errorf("limits: deadline %v: want ≥ 0", l.Deadline)
	case bad(l.EnergyBudgetJ):
		return fmt.Errorf("limits: energy budget %v J: want a finite value ≥ 0", l.EnergyBudgetJ)
	case bad(l.PowerCapW):
		return fmt.Errorf("limits: power cap %v W: want a finite value ≥ 0", l.PowerCapW)
	case l.PowerWindow < 0:
		return fmt.Errorf("limits: power window %v: want ≥ 0", l.PowerWindow)
	case l.MaxExit < 0:
		return fmt.Errorf("limits: max exit %d: want ≥ 0 (0 is all)", l.MaxExit)
	case bad(l.ThermalSoftC) || bad(l.ThermalHardC):
		return fmt.Errorf("limits: thermal soft %v °C, hard %v °C: want finite values ≥ 0", l.ThermalSoftC, l.ThermalHardC)
	case l.ThermalSoftC > 0 && l.ThermalHardC > 0 && l.ThermalHardC < l.ThermalSoftC:
		return fmt.Errorf("limits: thermal hard %v °C below soft %v °C", l.ThermalHardC, l.ThermalSoftC)
	case bad(l.ThermalBandC) || bad(l.ThrottleDerateC):
		return fmt.Errorf("limits: thermal band %v °C, throttle derate %v °C: want finite values ≥ 0", l.ThermalBandC, l.ThrottleDerateC)
	}
	return nil
}

func (l Limits) window() time.Duration {
	if l.PowerWindow > 0 {
		return l.PowerWindow
	}
	return DefaultPowerWindow
}

// ThermalExits returns how many exits (1-based depth) the thermal limits
// allow at tempC for a bundle of stages stages, with throttled saying
// whether the hardware reports thermal or power throttling. hard is true
// when the hard limit is reached. Without thermal limits it returns stages.
func (l Limits) ThermalExits(stages int, tempC float64, throttled bool) (exits int, hard bool) {
	if throttled {
		d := l.ThrottleDerateC
		if d == 0 {
			d = DefaultThrottleDerateC
		}
		tempC += d
	}
	if l.ThermalHardC > 0 && tempC >= l.ThermalHardC {
		return 1, true
	}
	if l.ThermalSoftC <= 0 || stages <= 1 {
		return stages, false
	}
	band := l.ThermalBandC
	if band == 0 {
		band = DefaultThermalBandC
	}
	floor := min(2, stages-1)
	d := (tempC - (l.ThermalSoftC - band)) / band
	d = clamp01(d)
	// Depth falls linearly from stages at the bottom of the band to floor
	// at the soft limit; a partly reached exit is not allowed.
	depth := float64(stages) - d*float64(stages-floor)
	return max(int(math.Floor(depth+1e-9)), floor), false
}
