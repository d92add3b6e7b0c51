package power

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFit(t *testing.T) {
	truth := func(s, g float64) Calibration { return Calibration{Seconds: s, GMACs: g, Joules: 4*s + 0.25*g} }
	tests := []struct {
		name     string
		runs     []Calibration
		idle, jg float64
		err      error
	}{
		{"exact", []Calibration{truth(1, 10), truth(2, 100), truth(0.5, 40)}, 4, 0.25, nil},
		{"one run", []Calibration{truth(1, 10)}, 0, 0, ErrIllConditioned},
		{"same rate", []Calibration{truth(1, 10), truth(2, 20)}, 0, 0, ErrIllConditioned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle, jg, err := Fit(tt.runs)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && (!near(idle, tt.idle) || !near(jg, tt.jg)) {
				t.Errorf("Fit = %v W, %v J/GMAC; want %v, %v", idle, jg, tt.idle, tt.jg)
			}
		})
	}
	if _, _, err := Fit([]Calibration{{Seconds: 0}}); err == nil {
		t.Error("Fit with zero seconds: nil error")
	}
}

func TestEstimator(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	m := EstimateModel{IdleW: 10, JoulesPerGMAC: map[string]float64{"cpu": 0.5}}
	if _, err := NewEstimator(m, "cuda", clock); err == nil {
		t.Fatal("NewEstimator with an unknown provider: nil error")
	}
	e, err := NewEstimator(m, "cpu", clock)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := e.Sample(context.Background())
	if r.TotalW.V != 10 || r.TotalW.Source != SourceEstimate || r.EnergyJ.V != 0 || r.Source != SourceEstimate {
		t.Errorf("first sample = %+v, want 10 W idle and 0 J, all estimate", r)
	}
	if len(r.Missing) == 0 {
		t.Error("estimate sample lists nothing missing; temperatures cannot be known")
	}
	j, src, ok := e.StageEnergy(now, now.Add(time.Second), 20)
	if !ok || src != SourceEstimate || j != 10+10 {
		t.Errorf("StageEnergy = %v %q %v, want 20 J estimate", j, src, ok)
	}
	now = now.Add(time.Second)
	r, _ = e.Sample(context.Background())
	if r.EnergyJ.V != 20 || r.TotalW.V != 20 {
		t.Errorf("after 1 s with 10 J of work: %v J, %v W; want 20 J, 20 W", r.EnergyJ.V, r.TotalW.V)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Sample(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sample with a cancelled context = %v", err)
	}
}

func TestEstimateModelValidate(t *testing.T) {
	for name, m := range map[string]EstimateModel{
		"negative idle":     {IdleW: -1, JoulesPerGMAC: map[string]float64{"cpu": 1}},
		"negative per gmac": {IdleW: 1, JoulesPerGMAC: map[string]float64{"cpu": -1}},
		"no provider":       {IdleW: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := m.Validate("cpu"); err == nil {
				t.Error("Validate: nil error")
			}
		})
	}
	if err := DefaultEstimateModel().Validate("cpu"); err != nil {
		t.Errorf("default model: %v", err)
	}
}
