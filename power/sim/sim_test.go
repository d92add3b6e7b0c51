package sim

import (
	"testing"
	"time"

	"github.com/anytime-edge/edge/power"
)

// TestScenariosMeetBounds is issue 5 item 6: every bound, for several seeds.
func TestScenariosMeetBounds(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		r := Run(Options{Seed: seed})
		for _, c := range r.Checks {
			t.Run(c.Scenario+"/"+c.Measure, func(t *testing.T) {
				if !c.OK {
					t.Errorf("seed %d: %s: got %s, want %s", seed, c.Measure, c.Value, c.Bound)
				}
			})
		}
		if seed == 1 || t.Failed() {
			t.Logf("seed %d:\n%s", seed, r)
		}
	}
}

func TestRunIsDeterministic(t *testing.T) {
	a, b := Run(Options{Seed: 7, Frames: 300}).String(), Run(Options{Seed: 7, Frames: 300}).String()
	if a != b {
		t.Errorf("same seed, different tables:\n%s\n---\n%s", a, b)
	}
	if c := Run(Options{Seed: 8, Frames: 300}).String(); c == a {
		t.Errorf("different seeds gave the same table:\n%s", c)
	}
}

// Without limits the policy runs every stage; with each limit on its own the
// mean depth must drop below the last exit, so the scenarios test something.
func TestLimitsBite(t *testing.T) {
	o := Options{Seed: 1, Frames: 400}.withDefaults()
	d := NewDevice(o.Spec, 1)
	if got := meanExits(Stream{Frames: o.Frames, Period: o.Period}.Run(d, o.policy(d, power.Limits{}))); got != 4 {
		t.Errorf("no limits: mean exits %v, want 4", got)
	}
	r := Run(o)
	for _, c := range r.Checks {
		if c.MeanExits >= 3.99 && c.Scenario != "thermal" {
			t.Errorf("%s: mean exits %.2f: the limit never halted a frame", c.Scenario, c.MeanExits)
		}
	}
	if r.ThermalHot >= r.ThermalCool {
		t.Errorf("thermal: hot phase depth %.2f not below cool %.2f", r.ThermalHot, r.ThermalCool)
	}
}

func TestDeviceEnergyWindow(t *testing.T) {
	spec := DefaultSpec()
	spec.TimeNoise, spec.PowerNoise = 0, 0
	d := NewDevice(spec, 1)
	d.Idle(Epoch.Add(time.Second))
	dur, j := d.RunStage(0, 1)
	if want := 3.0 / 200; dur.Seconds() < want*0.999 || dur.Seconds() > want*1.001 {
		t.Errorf("stage 0 took %v, want %vs", dur, want)
	}
	tests := []struct {
		name   string
		t0, t1 time.Time
		want   float64
	}{
		{"idle second", Epoch, Epoch.Add(time.Second), 5},
		{"before the run is idle", Epoch.Add(-time.Second), Epoch, 5},
		{"the stage", Epoch.Add(time.Second), Epoch.Add(time.Second + dur), j},
		{"half the stage", Epoch.Add(time.Second), Epoch.Add(time.Second + dur/2), j / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src, ok := d.EnergyBetween(tt.t0, tt.t1)
			if !ok || src != power.SourceSim {
				t.Fatalf("EnergyBetween: ok %v, source %q", ok, src)
			}
			if diff := got - tt.want; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("got %v J, want %v J", got, tt.want)
			}
		})
	}
	if _, _, ok := d.EnergyBetween(Epoch, d.Now().Add(time.Millisecond)); ok {
		t.Error("EnergyBetween into the future: ok, want not ok")
	}
}

func TestThermalModelHeatsAndCools(t *testing.T) {
	spec := DefaultSpec()
	spec.TimeNoise, spec.PowerNoise = 0, 0
	d := NewDevice(spec, 1)
	for i := 0; i < 10000; i++ { // 150 s, five time constants
		d.RunStage(0, 1)
	}
	hot := d.TempC()
	if want := spec.AmbientC + spec.CPerW*15; hot < want-1 || hot > want {
		t.Errorf("after 150 s at 15 W: %.1f °C, want just under %.1f", hot, want)
	}
	if d.Throttled() {
		t.Errorf("throttled at %.1f °C with the trip at %.1f", hot, spec.ThrottleC)
	}
	d.Idle(d.Now().Add(5 * spec.Tau))
	if c, want := d.TempC(), spec.AmbientC+spec.CPerW*spec.IdleW; c > want+0.5 {
		t.Errorf("after cooling: %.1f °C, want near %.1f", c, want)
	}
}

func TestThrottlingSlowsAndIsReported(t *testing.T) {
	spec := DefaultSpec()
	spec.TimeNoise, spec.PowerNoise = 0, 0
	spec.ThrottleC = spec.AmbientC // throttled from the start
	d := NewDevice(spec, 1)
	dur, _ := d.RunStage(0, 1)
	if want := 1.3 * 3.0 / 200; dur.Seconds() < want*0.999 || dur.Seconds() > want*1.001 {
		t.Errorf("throttled stage took %v, want %vs", dur, want)
	}
	r, _ := d.Latest()
	if r.Throttle == nil || !r.Throttle.Active || !r.Throttle.Thermal {
		t.Errorf("Latest throttle = %+v, want active thermal", r.Throttle)
	}
}
