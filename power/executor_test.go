package power_test

import (
	"context"
	"testing"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/engines/enginestest"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/powertest"
)

// The policy and the meters implement the executor's interfaces.
var (
	_ anytime.Policy = (*power.Policy)(nil)
	_ anytime.Meter  = (*power.Recorder)(nil)
	_ anytime.Meter  = (*power.Estimator)(nil)
	_ anytime.Meter  = powertest.Meter{}
)

// denseBundle has four dense stages of 1 GMAC each on a 16×16 input.
func denseBundle() *bundle.Bundle {
	m := bundle.Manifest{
		Format: bundle.Format, Name: "power-test", Task: bundle.TaskSegmentation,
		Input:        bundle.Input{Tensor: "image", Shape: []int64{1, 3, 16, 16}, Color: "rgb", Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}},
		OutputStride: 4,
		Confidence:   bundle.Confidence{Criterion: bundle.CriterionMaxSoftmax, Threshold: 0.9},
		Labels:       []bundle.Label{{Name: "a"}, {Name: "b"}},
	}
	for i := 0; i < 4; i++ {
		m.Stages = append(m.Stages, bundle.Stage{Name: "s" + string(rune('1'+i)), Mode: bundle.ModeDense, Logits: "logits", MACs: bundle.MACs{Fixed: 1 << 30}})
	}
	return &bundle.Bundle{Dir: "testdata", Manifest: m}
}

// The executor halts where the power policy says, with its reason. Energy
// comes from a meter charging 0.1 J per GMAC, so nothing depends on timing.
func TestExecutorHaltsOnPowerLimits(t *testing.T) {
	seeds := []power.StageSeed{{FixedGMACs: 1}, {FixedGMACs: 1}, {FixedGMACs: 1}, {FixedGMACs: 1}}
	dev := power.DeviceSeed{GMACsPerSecond: 1e6, JoulesPerGMAC: 0.1}
	tests := []struct {
		name   string
		limits power.Limits
		state  power.Latest
		exits  int
		reason anytime.Reason
	}{
		{"no limits", power.Limits{}, nil, 4, anytime.ReasonLastExit},
		{"max exit", power.Limits{MaxExit: 2}, nil, 2, anytime.ReasonMaxExit},
		{"energy budget", power.Limits{EnergyBudgetJ: 0.25}, nil, 2, anytime.ReasonEnergyBudget},
		{"thermal hard", power.Limits{ThermalSoftC: 70, ThermalHardC: 90}, powertest.Hot(95, false), 1, anytime.ReasonThermal},
		{"thermal soft", power.Limits{ThermalSoftC: 70, ThermalHardC: 90}, powertest.Hot(72, false), 2, anytime.ReasonThermal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := power.NewPolicy(power.Config{Stages: seeds, Device: dev, Limits: tt.limits, State: tt.state})
			if err != nil {
				t.Fatal(err)
			}
			b := denseBundle()
			f := enginestest.NewFake(4, 3*16*16, 2, 4*4)
			x, err := anytime.New(b, f, anytime.Config{Policy: p, Meter: powertest.Meter{JoulesPerGMAC: 0.1}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := x.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Exits) != tt.exits || res.Halt != tt.reason {
				t.Errorf("frame ran %d exits, halted for %q; want %d, %q", len(res.Exits), res.Halt, tt.exits, tt.reason)
			}
			for _, e := range res.Exits {
				if e.EnergySource != power.SourceSim || e.EnergyJ < 0.099 || e.EnergyJ > 0.101 {
					t.Errorf("exit %d energy %v J from %q, want 0.1 J from the meter", e.Exit, e.EnergyJ, e.EnergySource)
				}
			}
		})
	}
}
