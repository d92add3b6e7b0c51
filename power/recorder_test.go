package power

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

func TestIntegrate(t *testing.T) {
	hold := 100 * time.Millisecond
	// Power ramps 10 W → 20 W over a second; a counter agrees at 15 W mean.
	ramp := []point{
		{t: at(0), w: Measured(10, SourceJetson)},
		{t: at(500), w: Measured(15, SourceJetson)},
		{t: at(1000), w: Measured(20, SourceJetson)},
	}
	counter := []point{
		{t: at(0), w: Measured(10, SourceNVML), e: Measured(100, SourceNVML)},
		{t: at(1000), w: Measured(10, SourceNVML), e: Measured(110, SourceNVML)},
	}
	mixed := []point{
		{t: at(0), w: Measured(10, SourceJetson)},
		{t: at(1000), w: Measured(10, SourceEstimate)},
	}
	tests := []struct {
		name   string
		pts    []point
		a, b   time.Time
		want   float64
		src    Source
		wantOK bool
	}{
		{"trapezoid whole ramp", ramp, at(0), at(1000), 15, SourceJetson, true},
		{"trapezoid between readings", ramp, at(250), at(750), 7.5, SourceJetson, true},
		{"hold past the newest", ramp, at(1000), at(1100), 2, SourceJetson, true},
		{"beyond hold", ramp, at(1000), at(1200), 0, "", false},
		{"before the oldest beyond hold", ramp, at(-300), at(100), 0, "", false},
		{"counter difference", counter, at(0), at(1000), 10, SourceNVML, true},
		{"counter interpolated", counter, at(250), at(500), 2.5, SourceNVML, true},
		{"counter extrapolated with last power", counter, at(900), at(1050), 1.5, SourceNVML, true},
		{"an estimate taints the result", mixed, at(0), at(1000), 10, SourceEstimate, true},
		{"empty interval", ramp, at(500), at(500), 0, "", false},
		{"no readings", nil, at(0), at(1), 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src, ok := integrate(tt.pts, tt.a, tt.b, hold)
			if ok != tt.wantOK || (ok && (!near(got, tt.want) || src != tt.src)) {
				t.Errorf("integrate = %v J, %q, %v; want %v J, %q, %v", got, src, ok, tt.want, tt.src, tt.wantOK)
			}
		})
	}
}

func TestIntegrateCounterResetFallsBackToPower(t *testing.T) {
	pts := []point{
		{t: at(0), w: Measured(10, SourceNVML), e: Measured(500, SourceNVML)},
		{t: at(1000), w: Measured(10, SourceNVML), e: Measured(3, SourceNVML)}, // driver reload
	}
	got, _, ok := integrate(pts, at(0), at(1000), 0)
	if !ok || !near(got, 10) {
		t.Errorf("got %v J ok %v, want 10 J from power", got, ok)
	}
}

// script is a Sampler that returns scripted readings, then an error.
type script struct {
	mu   sync.Mutex
	rs   []Reading
	errs int
}

func (s *script) Sample(ctx context.Context) (Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rs) == 0 {
		s.errs++
		return Reading{}, errors.New("no more")
	}
	r := s.rs[0]
	s.rs = s.rs[1:]
	return r, nil
}

func (s *script) Close() error { return nil }

func TestRecorderRing(t *testing.T) {
	r := NewRecorder(&script{}, RecorderOptions{Size: 3, Interval: 100 * time.Millisecond})
	if _, ok := r.Latest(); ok {
		t.Fatal("Latest on an empty ring: ok")
	}
	for i := 0; i < 5; i++ {
		r.Add(Reading{Time: at(100 * i), TotalW: Measured(float64(i), SourceNVML)})
	}
	r.Add(Reading{Time: at(50), TotalW: Measured(99, SourceNVML)}) // out of order: dropped
	rs := r.Readings()
	if len(rs) != 3 || rs[0].TotalW.V != 2 || rs[2].TotalW.V != 4 {
		t.Fatalf("ring = %v, want the readings at 2, 3, 4 W", rs)
	}
	if l, _ := r.Latest(); l.TotalW.V != 4 {
		t.Errorf("Latest = %v W, want 4", l.TotalW.V)
	}
	// 2 W → 4 W linearly over 200 ms = 0.6 J.
	if j, _, ok := r.EnergyBetween(at(200), at(400)); !ok || !near(j, 0.6) {
		t.Errorf("EnergyBetween = %v, %v; want 0.6 J", j, ok)
	}
	if _, _, ok := r.EnergyBetween(at(-100), at(400)); ok {
		t.Error("EnergyBetween over dropped readings: ok, want not ok")
	}
}

func TestRecorderRunStopsOnCancelAndSkipsErrors(t *testing.T) {
	s := &script{rs: []Reading{{Time: at(0)}, {Time: at(1)}}}
	r := NewRecorder(s, RecorderOptions{Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	// Wait until the script has run dry at least once; no timing assumed.
	for {
		s.mu.Lock()
		errs := s.errs
		s.mu.Unlock()
		if errs > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if n := len(r.Readings()); n != 2 {
		t.Errorf("recorded %d readings, want 2", n)
	}
}

func TestRecorderStageEnergyAsksTheEstimator(t *testing.T) {
	e, err := NewEstimator(EstimateModel{IdleW: 2, JoulesPerGMAC: map[string]float64{"cpu": 0.5}}, "cpu", func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(e, RecorderOptions{})
	j, src, ok := r.StageEnergy(at(0), at(500), 4)
	if !ok || src != SourceEstimate || !near(j, 2*0.5+0.5*4) {
		t.Errorf("StageEnergy = %v, %q, %v; want 3 J estimate", j, src, ok)
	}
}

// TestRecorderDropsImplausibleValues: values outside physical bounds never
// reach the policy as measurements, and neither does a counter jump.
func TestRecorderDropsImplausibleValues(t *testing.T) {
	rec := NewRecorder(&script{}, RecorderOptions{})
	rec.Add(Reading{Time: at(0), TotalW: Measured(10, SourceNVML), EnergyJ: Measured(100, SourceNVML)})
	rec.Add(Reading{Time: at(100), TotalW: Measured(9.2e15, SourceJetson), EnergyJ: Measured(1e12, SourceNVML),
		Temps: []Temp{{Zone: "cpu", C: 2e6, Source: SourceSysfs}, {Zone: "gpu", C: 55, Source: SourceSysfs}},
		Rails: []Rail{{Name: "VDD_IN", Watts: math.Inf(1), Source: SourceJetson}}, GPULoad: Measured(-3, SourceSysfs)})
	r, _ := rec.Latest()
	if r.TotalW.OK() || r.EnergyJ.OK() || r.GPULoad.OK() || len(r.Rails) != 0 || len(r.Temps) != 1 || r.Temps[0].Zone != "gpu" {
		t.Fatalf("kept implausible values: %+v", r)
	}
	var fields []string
	for _, m := range r.Missing {
		fields = append(fields, m.Field)
	}
	if want := []string{"total_w", "gpu_load", "rail VDD_IN", "temp cpu", "energy_j"}; !slices.Equal(fields, want) {
		t.Errorf("missing %q, want %q", fields, want)
	}
}
