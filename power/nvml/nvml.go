package nvml

import (
	"errors"

	"github.com/anytime-edge/edge/power"
)

// Errors from Open.
var (
	// ErrUnavailable: NVML cannot be used at all (built without cgo, or
	// libnvidia-ml.so.1 not found).
	ErrUnavailable = errors.New("nvml unavailable")
	// ErrNotSupported: NVML initialised but the device reports neither
	// power nor energy (Jetson's nvgpu, for one).
	ErrNotSupported = errors.New("nvml reads no power on this device")
)

// Options select the library and the device.
type Options struct {
	// LibraryPath is libnvidia-ml's path; empty uses the loader's search.
	LibraryPath string
	// Index is the device's NVML index.
	Index int
}

// Clock-event reason bits, as in nvml.h (nvmlClocksEventReason*). Kept
// here so decoding builds without cgo; a cgo test checks them against
// go-nvml's constants.
const (
	reasonGPUIdle        = 0x1
	reasonAppClocks      = 0x2
	reasonSwPowerCap     = 0x4
	reasonHwSlowdown     = 0x8
	reasonSyncBoost      = 0x10
	reasonSwThermal      = 0x20
	reasonHwThermal      = 0x40
	reasonHwPowerBrake   = 0x80
	reasonDisplayClock   = 0x100
	reasonBoardLimit     = 0x200
	reasonReliability    = 0x400
	reasonsHoldingClocks = reasonSwPowerCap | reasonHwSlowdown | reasonSwThermal | reasonHwThermal | reasonHwPowerBrake | reasonBoardLimit | reasonReliability
	reasonsThermal       = reasonSwThermal | reasonHwThermal | reasonHwSlowdown
	reasonsPower         = reasonSwPowerCap | reasonHwPowerBrake | reasonBoardLimit
)

var reasonNames = []struct {
	bit  uint64
	name string
}{
	{reasonGPUIdle, "gpu-idle"},
	{reasonAppClocks, "applications-clocks-setting"},
	{reasonSwPowerCap, "sw-power-cap"},
	{reasonHwSlowdown, "hw-slowdown"},
	{reasonSyncBoost, "sync-boost"},
	{reasonSwThermal, "sw-thermal-slowdown"},
	{reasonHwThermal, "hw-thermal-slowdown"},
	{reasonHwPowerBrake, "hw-power-brake-slowdown"},
	{reasonDisplayClock, "display-clock-setting"},
	{reasonBoardLimit, "board-limit"},
	{reasonReliability, "reliability"},
}

// DecodeThrottle turns a clock-event reason mask into a Throttle. Idling,
// application clock settings, sync boost and display clocks are listed but
// are not throttling; hardware slowdown counts as thermal (it fires on heat
// as well as on power brake), so the policy derates on it.
func DecodeThrottle(mask uint64) power.Throttle {
	t := power.Throttle{
		Active:  mask&reasonsHoldingClocks != 0,
		Thermal: mask&reasonsThermal != 0,
		Power:   mask&reasonsPower != 0,
		Source:  power.SourceNVML,
	}
	for _, r := range reasonNames {
		if mask&r.bit != 0 {
			t.Reasons = append(t.Reasons, r.name)
		}
		mask &^= r.bit
	}
	if mask != 0 {
		t.Reasons = append(t.Reasons, "unknown")
	}
	return t
}
