package power

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Value is one scalar with the source it came from. A Value whose Source is
// empty is absent: the backend could not read it (see Reading.Missing).
type Value struct {
	V      float64 `json:"v"`
	Source Source  `json:"source"`
}

// OK reports whether the value is present.
func (v Value) OK() bool { return v.Source != "" }

// Measured returns a present value from src.
func Measured(v float64, src Source) Value { return Value{V: v, Source: src} }

// Rail is one supply rail's power.
type Rail struct {
	Name  string  `json:"name"`
	Watts float64 `json:"w"`
	// Volts and Amps are the bus voltage and current where the sensor gives
	// them, zero otherwise.
	Volts  float64 `json:"v,omitempty"`
	Amps   float64 `json:"a,omitempty"`
	Source Source  `json:"source"`
}

// Temp is one temperature sensor (a thermal zone, or the GPU die).
type Temp struct {
	Zone string  `json:"zone"`
	C    float64 `json:"c"`
	// SlowdownC and ShutdownC are the sensor's trip points where the
	// hardware reports them, zero otherwise.
	SlowdownC float64 `json:"slowdown_c,omitempty"`
	ShutdownC float64 `json:"shutdown_c,omitempty"`
	Source    Source  `json:"source"`
}

// Throttle is the clock-throttle state the hardware reports.
type Throttle struct {
	// Active is true when clocks are held down for a reason other than
	// idling or an application clock setting.
	Active bool `json:"active"`
	// Thermal and Power say whether a thermal or a power reason is among
	// the active ones; the policy derates on either.
	Thermal bool     `json:"thermal,omitempty"`
	Power   bool     `json:"power,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Source  Source   `json:"source"`
}

// Clock is one clock domain's current frequency.
type Clock struct {
	Name string `json:"name"`
	MHz  uint32 `json:"mhz"`
}

// Missing records a value a backend could not read, and why.
type Missing struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Reading is one sample of the device's power and thermal state. Every value
// carries its source; absent values are zero with an empty source and are
// listed in Missing with the reason.
type Reading struct {
	Time time.Time `json:"time"`
	// Source is the backend that produced the reading.
	Source Source `json:"source"`
	// Device names the device (GPU name, board model).
	Device string `json:"device,omitempty"`
	Rails  []Rail `json:"rails,omitempty"`
	// TotalW is the device's total power and TotalFrom how it was formed
	// (a rail name, "sum of rails", "board", "idle+work").
	TotalW    Value  `json:"total_w,omitzero"`
	TotalFrom string `json:"total_from,omitempty"`
	// EnergyJ is a cumulative energy counter where the hardware keeps one
	// (NVML, or the estimator's running total); differences of it are
	// energies.
	EnergyJ Value `json:"energy_j,omitzero"`
	// LimitW is the enforced power limit.
	LimitW Value  `json:"limit_w,omitzero"`
	Temps  []Temp `json:"temps,omitempty"`
	// Throttle is nil when the backend cannot tell.
	Throttle *Throttle `json:"throttle,omitempty"`
	Clocks   []Clock   `json:"clocks,omitempty"`
	// GPULoad is the GPU's busy percentage, 0–100.
	GPULoad Value `json:"gpu_load,omitzero"`
	// Mode is the power mode (nvpmodel name or id on Jetson).
	Mode    string    `json:"mode,omitempty"`
	Missing []Missing `json:"missing,omitempty"`
}

// Miss records that field could not be read and why.
func (r *Reading) Miss(field, reason string) {
	r.Missing = append(r.Missing, Missing{Field: field, Reason: reason})
}

// HottestC returns the highest temperature in the reading and its zone; ok
// is false when the reading has none.
func (r Reading) HottestC() (c float64, zone string, ok bool) {
	for _, t := range r.Temps {
		if !ok || t.C > c {
			c, zone, ok = t.C, t.Zone, true
		}
	}
	return c, zone, ok
}

// Sampler reads the device's current power and thermal state. Sample may
// block on device I/O and honours ctx. Close releases what the sampler
// holds; a Sampler is used from one goroutine at a time (the Recorder's).
type Sampler interface {
	Sample(ctx context.Context) (Reading, error)
	Close() error
}

// Latest gives the most recent reading; the policy reads temperatures and
// throttle state through it. ok is false before the first reading.
type Latest interface {
	Latest() (r Reading, ok bool)
}

// EnergyWindow integrates the device's energy between two instants. ok is
// false when the readings do not cover the interval.
type EnergyWindow interface {
	EnergyBetween(t0, t1 time.Time) (joules float64, src Source, ok bool)
}

// Physical bounds of a reading. A value outside them (or not finite) is a
// sensor or driver fault, not a measurement: DropImplausible makes it
// absent, with the reason in Missing.
const (
	// MaxPowerW bounds total, rail and limit power: above any board or GPU.
	MaxPowerW = 2000.0
	// MinTempC and MaxTempC bound temperatures: colder than any device
	// runs, hotter than any silicon survives.
	MinTempC = -70.0
	MaxTempC = 200.0
)

// DropImplausible makes every value outside the physical bounds absent and
// records why in Missing, so that one absurd sample (a rail current near the
// int64 maximum, a temperature of 2 million °C) is never taken as a
// measurement.
func (r *Reading) DropImplausible() {
	watts := func(w float64) bool { return w >= 0 && w <= MaxPowerW }
	if r.TotalW.OK() && !watts(r.TotalW.V) {
		r.Miss("total_w", fmt.Sprintf("%g W outside 0..%g W", r.TotalW.V, MaxPowerW))
		r.TotalW, r.TotalFrom = Value{}, ""
	}
	if r.LimitW.OK() && !watts(r.LimitW.V) {
		r.Miss("limit_w", fmt.Sprintf("%g W outside 0..%g W", r.LimitW.V, MaxPowerW))
		r.LimitW = Value{}
	}
	if r.EnergyJ.OK() && !(r.EnergyJ.V >= 0 && !math.IsInf(r.EnergyJ.V, 0)) {
		r.Miss("energy_j", fmt.Sprintf("counter reads %g J", r.EnergyJ.V))
		r.EnergyJ = Value{}
	}
	if r.GPULoad.OK() && !(r.GPULoad.V >= 0 && r.GPULoad.V <= 100) {
		r.Miss("gpu_load", fmt.Sprintf("%g%% outside 0..100%%", r.GPULoad.V))
		r.GPULoad = Value{}
	}
	r.Rails = slices.DeleteFunc(r.Rails, func(rl Rail) bool {
		if watts(rl.Watts) {
			return false
		}
		r.Miss("rail "+rl.Name, fmt.Sprintf("%g W outside 0..%g W", rl.Watts, MaxPowerW))
		return true
	})
	r.Temps = slices.DeleteFunc(r.Temps, func(t Temp) bool {
		if t.C >= MinTempC && t.C <= MaxTempC {
			return false
		}
		r.Miss("temp "+t.Zone, fmt.Sprintf("%g °C outside %g..%g °C", t.C, MinTempC, MaxTempC))
		return true
	})
}
