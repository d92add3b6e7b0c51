package power

import (
	"strings"
	"testing"
)

func TestReadingText(t *testing.T) {
	tests := []struct {
		name string
		r    Reading
		want []string
	}{
		{
			name: "jetson",
			r: Reading{
				Time: t0, Source: SourceJetson, Device: "Orin Nano", Mode: "15W (id 0)",
				Rails:  []Rail{{Name: "VDD_IN", Watts: 4.95, Source: SourceJetson}, {Name: "VDD_SOC", Watts: 1.54, Source: SourceJetson}},
				TotalW: Measured(4.95, SourceJetson), TotalFrom: "VDD_IN",
				Temps:   []Temp{{Zone: "tj-thermal", C: 48.5, Source: SourceSysfs}},
				GPULoad: Measured(34.5, SourceSysfs),
				Missing: []Missing{{Field: "throttle", Reason: "not exposed"}},
			},
			want: []string{
				"2026-01-01T00:00:00.000Z  jetson-ina3221  Orin Nano  mode 15W (id 0)",
				"total 4.95 W (VDD_IN)  VDD_IN 4.95 W  VDD_SOC 1.54 W",
				"tj@48.5C [sysfs]", "load 34.5%", "throttle n/a", "n/a   throttle: not exposed",
			},
		},
		{
			name: "nvml throttled",
			r: Reading{
				Time: t0, Source: SourceNVML, TotalW: Measured(300, SourceNVML), EnergyJ: Measured(1234.5, SourceNVML),
				LimitW:   Measured(700, SourceNVML),
				Temps:    []Temp{{Zone: "gpu", C: 88, SlowdownC: 87, ShutdownC: 92, Source: SourceNVML}},
				Throttle: &Throttle{Active: true, Thermal: true, Reasons: []string{"sw-thermal-slowdown"}, Source: SourceNVML},
				Clocks:   []Clock{{Name: "sm", MHz: 1410}},
			},
			want: []string{"total 300.00 W", "energy 1234.5 J", "limit 700 W", "gpu@88.0C (slowdown 87C, shutdown 92C)",
				"throttle THROTTLED (sw-thermal-slowdown)", "sm 1410 MHz"},
		},
		{
			name: "estimate marks itself",
			r:    Reading{Time: t0, Source: SourceEstimate, TotalW: Measured(10, SourceEstimate), TotalFrom: "idle+work"},
			want: []string{"estimate", "total 10.00 W (idle+work)", "temp   n/a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.r.Text()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Text() lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
