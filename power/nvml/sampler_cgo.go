//go:build cgo

package nvml

import (
	"context"
	"errors"
	"fmt"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/anytime-edge/edge/power"
)

// Sampler reads one NVML device. Close shuts NVML down; it is safe to call
// more than once. Use from one goroutine at a time.
type Sampler struct {
	lib    gonvml.Interface
	dev    gonvml.Device
	index  int
	name   string
	closed bool
	now    func() time.Time
}

// Open loads NVML (from o.LibraryPath if set), opens device o.Index and
// reads its power or energy once; it fails with ErrUnavailable when NVML
// cannot load and ErrNotSupported when it loads but reads neither.
func Open(o Options) (*Sampler, error) {
	var opts []gonvml.LibraryOption
	if o.LibraryPath != "" {
		opts = append(opts, gonvml.WithLibraryPath(o.LibraryPath))
	}
	return OpenLibrary(gonvml.New(opts...), o.Index)
}

// OpenLibrary is Open over an injected NVML (go-nvml's mock in tests).
func OpenLibrary(lib gonvml.Interface, index int) (*Sampler, error) {
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		if ret == gonvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("nvml init: %w: %w", ErrUnavailable, ret)
		}
		return nil, fmt.Errorf("nvml init: %w", ret)
	}
	dev, ret := lib.DeviceGetHandleByIndex(index)
	if ret != gonvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("nvml device %d: %w", index, ret)
	}
	s := &Sampler{lib: lib, dev: dev, index: index, now: time.Now}
	if name, ret := dev.GetName(); ret == gonvml.SUCCESS {
		s.name = name
	}
	_, pret := dev.GetPowerUsage()
	_, eret := dev.GetTotalEnergyConsumption()
	if pret != gonvml.SUCCESS && eret != gonvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("nvml device %d (%s): init succeeded, but power usage: %v; total energy: %v: %w",
			index, s.name, pret, eret, ErrNotSupported)
	}
	return s, nil
}

// Name is the device's name as NVML reports it.
func (s *Sampler) Name() string { return s.name }

// Sample reads every value it can; one that fails is absent, with NVML's
// error as the reason.
func (s *Sampler) Sample(ctx context.Context) (power.Reading, error) {
	if err := ctx.Err(); err != nil {
		return power.Reading{}, err
	}
	if s.closed {
		return power.Reading{}, errors.New("nvml: sample after close")
	}
	src := power.SourceNVML
	r := power.Reading{Time: s.now(), Source: src, Device: s.name}
	miss := func(field string, ret gonvml.Return) { r.Miss(field, ret.Error()) }

	if mw, ret := s.dev.GetPowerUsage(); ret == gonvml.SUCCESS {
		r.TotalW, r.TotalFrom = power.Measured(float64(mw)/1000, src), "board"
	} else {
		miss("total_w", ret)
	}
	if mj, ret := s.dev.GetTotalEnergyConsumption(); ret == gonvml.SUCCESS {
		r.EnergyJ = power.Measured(float64(mj)/1000, src)
	} else {
		miss("energy_j", ret)
	}
	if mw, ret := s.dev.GetEnforcedPowerLimit(); ret == gonvml.SUCCESS {
		r.LimitW = power.Measured(float64(mw)/1000, src)
	} else {
		miss("limit_w", ret)
	}
	if c, ret := s.dev.GetTemperature(gonvml.TEMPERATURE_GPU); ret == gonvml.SUCCESS {
		t := power.Temp{Zone: "gpu", C: float64(c), Source: src}
		if v, ret := s.dev.GetTemperatureThreshold(gonvml.TEMPERATURE_THRESHOLD_SLOWDOWN); ret == gonvml.SUCCESS {
			t.SlowdownC = float64(v)
		}
		if v, ret := s.dev.GetTemperatureThreshold(gonvml.TEMPERATURE_THRESHOLD_SHUTDOWN); ret == gonvml.SUCCESS {
			t.ShutdownC = float64(v)
		}
		r.Temps = append(r.Temps, t)
	} else {
		miss("temps", ret)
	}
	if mask, ret := s.dev.GetCurrentClocksEventReasons(); ret == gonvml.SUCCESS {
		t := DecodeThrottle(mask)
		r.Throttle = &t
	} else {
		miss("throttle", ret)
	}
	for _, c := range []struct {
		name string
		typ  gonvml.ClockType
	}{{"graphics", gonvml.CLOCK_GRAPHICS}, {"sm", gonvml.CLOCK_SM}, {"mem", gonvml.CLOCK_MEM}} {
		if mhz, ret := s.dev.GetClockInfo(c.typ); ret == gonvml.SUCCESS {
			r.Clocks = append(r.Clocks, power.Clock{Name: c.name, MHz: mhz})
		} else {
			miss("clock."+c.name, ret)
		}
	}
	if u, ret := s.dev.GetUtilizationRates(); ret == gonvml.SUCCESS {
		r.GPULoad = power.Measured(float64(u.Gpu), src)
	} else {
		miss("gpu_load", ret)
	}
	return r, nil
}

// Close shuts NVML down.
func (s *Sampler) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if ret := s.lib.Shutdown(); ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", ret)
	}
	return nil
}
