//go:build cgo

package nvml

import (
	"context"
	"errors"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/anytime-edge/edge/power"
)

// fakeLib wraps dev in a mock NVML whose Init returns initRet.
func fakeLib(initRet gonvml.Return, dev gonvml.Device) (*mock.Interface, *int) {
	shutdowns := 0
	return &mock.Interface{
		InitFunc:     func() gonvml.Return { return initRet },
		ShutdownFunc: func() gonvml.Return { shutdowns++; return gonvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (gonvml.Device, gonvml.Return) {
			if i != 0 {
				return nil, gonvml.ERROR_INVALID_ARGUMENT
			}
			return dev, gonvml.SUCCESS
		},
	}, &shutdowns
}

// discrete is an H100-like device with every value readable.
func discrete() *mock.Device {
	return &mock.Device{
		GetNameFunc:                   func() (string, gonvml.Return) { return "NVIDIA H100 80GB HBM3", gonvml.SUCCESS },
		GetPowerUsageFunc:             func() (uint32, gonvml.Return) { return 123456, gonvml.SUCCESS },
		GetTotalEnergyConsumptionFunc: func() (uint64, gonvml.Return) { return 9876543, gonvml.SUCCESS },
		GetEnforcedPowerLimitFunc:     func() (uint32, gonvml.Return) { return 700000, gonvml.SUCCESS },
		GetTemperatureFunc: func(s gonvml.TemperatureSensors) (uint32, gonvml.Return) {
			return 61, gonvml.SUCCESS
		},
		GetTemperatureThresholdFunc: func(th gonvml.TemperatureThresholds) (uint32, gonvml.Return) {
			switch th {
			case gonvml.TEMPERATURE_THRESHOLD_SLOWDOWN:
				return 87, gonvml.SUCCESS
			case gonvml.TEMPERATURE_THRESHOLD_SHUTDOWN:
				return 92, gonvml.SUCCESS
			}
			return 0, gonvml.ERROR_NOT_SUPPORTED
		},
		GetCurrentClocksEventReasonsFunc: func() (uint64, gonvml.Return) {
			return gonvml.ClocksEventReasonSwPowerCap | gonvml.ClocksEventReasonGpuIdle, gonvml.SUCCESS
		},
		GetClockInfoFunc: func(c gonvml.ClockType) (uint32, gonvml.Return) {
			return map[gonvml.ClockType]uint32{gonvml.CLOCK_GRAPHICS: 1980, gonvml.CLOCK_SM: 1980, gonvml.CLOCK_MEM: 2619}[c], gonvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (gonvml.Utilization, gonvml.Return) {
			return gonvml.Utilization{Gpu: 87, Memory: 40}, gonvml.SUCCESS
		},
	}
}

// jetson answers like Orin's nvgpu on JetPack 6: named, nothing else.
func jetson() *mock.Device {
	ns := func() (uint32, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
	return &mock.Device{
		GetNameFunc:                   func() (string, gonvml.Return) { return "Orin (nvgpu)", gonvml.SUCCESS },
		GetPowerUsageFunc:             ns,
		GetTotalEnergyConsumptionFunc: func() (uint64, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED },
	}
}

func TestOpenSelectsByReading(t *testing.T) {
	tests := []struct {
		name     string
		initRet  gonvml.Return
		dev      gonvml.Device
		want     error
		shutdown int
	}{
		{"discrete GPU", gonvml.SUCCESS, discrete(), nil, 0},
		{"jetson: init succeeds, nothing reads", gonvml.SUCCESS, jetson(), ErrNotSupported, 1},
		{"no driver", gonvml.ERROR_LIBRARY_NOT_FOUND, nil, ErrUnavailable, 0},
		{"driver not loaded", gonvml.ERROR_DRIVER_NOT_LOADED, nil, gonvml.ERROR_DRIVER_NOT_LOADED, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib, shut := fakeLib(tt.initRet, tt.dev)
			s, err := OpenLibrary(lib, 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenLibrary error = %v, want %v", err, tt.want)
			}
			if *shut != tt.shutdown {
				t.Errorf("Shutdown called %d times, want %d", *shut, tt.shutdown)
			}
			if err == nil {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				_ = s.Close()
				if *shut != 1 {
					t.Errorf("after two Closes, Shutdown called %d times, want 1", *shut)
				}
			}
		})
	}
	lib, _ := fakeLib(gonvml.SUCCESS, discrete())
	if _, err := OpenLibrary(lib, 3); err == nil || !strings.Contains(err.Error(), "device 3") {
		t.Errorf("missing device: error %v, want one naming device 3", err)
	}
}

func TestSample(t *testing.T) {
	lib, _ := fakeLib(gonvml.SUCCESS, discrete())
	s, err := OpenLibrary(lib, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != power.SourceNVML || r.Device != "NVIDIA H100 80GB HBM3" {
		t.Errorf("source %q device %q", r.Source, r.Device)
	}
	checks := []struct {
		name string
		got  power.Value
		want float64
	}{
		{"power W", r.TotalW, 123.456},
		{"energy J", r.EnergyJ, 9876.543},
		{"limit W", r.LimitW, 700},
		{"gpu load %", r.GPULoad, 87},
	}
	for _, c := range checks {
		if c.got.Source != power.SourceNVML || c.got.V < c.want-1e-9 || c.got.V > c.want+1e-9 {
			t.Errorf("%s = %+v, want %v from nvml", c.name, c.got, c.want)
		}
	}
	if len(r.Temps) != 1 || r.Temps[0].C != 61 || r.Temps[0].SlowdownC != 87 || r.Temps[0].ShutdownC != 92 {
		t.Errorf("temps = %+v, want gpu 61 °C, slowdown 87, shutdown 92", r.Temps)
	}
	if r.Throttle == nil || !r.Throttle.Active || !r.Throttle.Power || r.Throttle.Thermal {
		t.Errorf("throttle = %+v, want active power cap", r.Throttle)
	}
	if len(r.Clocks) != 3 || r.Clocks[2] != (power.Clock{Name: "mem", MHz: 2619}) {
		t.Errorf("clocks = %+v", r.Clocks)
	}
	if len(r.Missing) != 0 {
		t.Errorf("missing = %+v, want none", r.Missing)
	}
}

// A device that reads power but nothing else gives a reading with the rest
// absent and a reason for each.
func TestSamplePartial(t *testing.T) {
	ns := func() (uint32, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
	dev := &mock.Device{
		GetNameFunc:                   func() (string, gonvml.Return) { return "old", gonvml.SUCCESS },
		GetPowerUsageFunc:             func() (uint32, gonvml.Return) { return 50000, gonvml.SUCCESS },
		GetTotalEnergyConsumptionFunc: func() (uint64, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED },
		GetEnforcedPowerLimitFunc:     ns,
		GetTemperatureFunc: func(gonvml.TemperatureSensors) (uint32, gonvml.Return) {
			return 0, gonvml.ERROR_GPU_IS_LOST
		},
		GetCurrentClocksEventReasonsFunc: func() (uint64, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED },
		GetClockInfoFunc:                 func(gonvml.ClockType) (uint32, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED },
		GetUtilizationRatesFunc: func() (gonvml.Utilization, gonvml.Return) {
			return gonvml.Utilization{}, gonvml.ERROR_NOT_SUPPORTED
		},
	}
	lib, _ := fakeLib(gonvml.SUCCESS, dev)
	s, err := OpenLibrary(lib, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.TotalW.OK() || r.EnergyJ.OK() || r.LimitW.OK() || r.GPULoad.OK() || len(r.Temps) != 0 || r.Throttle != nil {
		t.Errorf("reading = %+v, want only power present", r)
	}
	fields := map[string]string{}
	for _, m := range r.Missing {
		fields[m.Field] = m.Reason
	}
	for _, f := range []string{"energy_j", "limit_w", "temps", "throttle", "clock.graphics", "gpu_load"} {
		if fields[f] == "" {
			t.Errorf("missing[%q] has no reason (missing = %+v)", f, r.Missing)
		}
	}
	s.Close()
	if _, err := s.Sample(context.Background()); err == nil {
		t.Error("Sample after Close: nil error")
	}
}

func TestDecodeThrottle(t *testing.T) {
	tests := []struct {
		name                   string
		mask                   uint64
		active, thermal, power bool
		reasons                string
	}{
		{"none", 0, false, false, false, ""},
		{"idle is not throttling", gonvml.ClocksEventReasonGpuIdle, false, false, false, "gpu-idle"},
		{"power cap", gonvml.ClocksEventReasonSwPowerCap, true, false, true, "sw-power-cap"},
		{"sw thermal", gonvml.ClocksEventReasonSwThermalSlowdown, true, true, false, "sw-thermal-slowdown"},
		{"hw thermal", gonvml.ClocksThrottleReasonHwThermalSlowdown, true, true, false, "hw-thermal-slowdown"},
		{"power brake", gonvml.ClocksThrottleReasonHwPowerBrakeSlowdown, true, false, true, "hw-power-brake-slowdown"},
		{"hw slowdown counts as heat", gonvml.ClocksThrottleReasonHwSlowdown, true, true, false, "hw-slowdown"},
		{"unknown bit", 1 << 40, false, false, false, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecodeThrottle(tt.mask)
			if got.Active != tt.active || got.Thermal != tt.thermal || got.Power != tt.power || strings.Join(got.Reasons, ",") != tt.reasons {
				t.Errorf("DecodeThrottle(%#x) = %+v, want active %v thermal %v power %v reasons %q", tt.mask, got, tt.active, tt.thermal, tt.power, tt.reasons)
			}
		})
	}
}

// Our copies of the reason bits must match go-nvml's.
func TestReasonBitsMatchGoNVML(t *testing.T) {
	pairs := map[uint64]uint64{
		reasonGPUIdle:      gonvml.ClocksEventReasonGpuIdle,
		reasonAppClocks:    gonvml.ClocksEventReasonApplicationsClocksSetting,
		reasonSwPowerCap:   gonvml.ClocksEventReasonSwPowerCap,
		reasonHwSlowdown:   gonvml.ClocksThrottleReasonHwSlowdown,
		reasonSyncBoost:    gonvml.ClocksEventReasonSyncBoost,
		reasonSwThermal:    gonvml.ClocksEventReasonSwThermalSlowdown,
		reasonHwThermal:    gonvml.ClocksThrottleReasonHwThermalSlowdown,
		reasonHwPowerBrake: gonvml.ClocksThrottleReasonHwPowerBrakeSlowdown,
		reasonDisplayClock: gonvml.ClocksEventReasonDisplayClockSetting,
		reasonBoardLimit:   gonvml.ClocksEventReasonBoardLimit,
		reasonReliability:  gonvml.ClocksEventReasonReliability,
	}
	for ours, theirs := range pairs {
		if ours != theirs {
			t.Errorf("reason bit %#x, go-nvml %#x", ours, theirs)
		}
	}
}
