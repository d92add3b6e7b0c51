package power

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anytime-edge/edge/anytime"
)

// fixed is a Latest that always returns r.
type fixed struct{ r Reading }

func (f fixed) Latest() (Reading, bool) { return f.r, true }

func hot(c float64, throttled bool) fixed {
	r := Reading{Time: t0, Temps: []Temp{{Zone: "tj", C: c, Source: SourceJetson}}}
	if throttled {
		r.Throttle = &Throttle{Active: true, Thermal: true, Source: SourceNVML}
	}
	return fixed{r}
}

// Four stages of 1 GMAC fixed + 2 GMAC masked at 100 GMAC/s: 10 ms + 20 ms·a,
// 0.1 J + 0.2 J·a at 10 W (all of it per-GMAC energy).
var testSeeds = []StageSeed{{1, 2}, {1, 2}, {1, 2}, {1, 2}}

func testPolicy(t *testing.T, l Limits, state Latest) *Policy {
	t.Helper()
	return seededPolicy(t, Config{Limits: l, State: state})
}

// seededPolicy is the policy of cfg over testSeeds on a device seeded at
// 100 GMAC/s and 0.1 J/GMAC.
func seededPolicy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	cfg.Stages = testSeeds
	cfg.Device = DeviceSeed{GMACsPerSecond: 100, JoulesPerGMAC: 0.1}
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// teach runs n frames of every stage at active fraction a with exact costs
// matching the seed, so forecasts are sharp.
func teach(p *Policy, n int, a float64) {
	start := t0
	for i := 0; i < n; i++ {
		p.StartFrame(start)
		for k := range testSeeds {
			d := time.Duration((10 + 20*a) * float64(time.Millisecond))
			p.StageDone(anytime.StageCost{Stage: k, ActiveFraction: a, Duration: d, EnergyJ: 0.1 + 0.2*a, EnergySource: SourceNVML})
		}
		start = start.Add(time.Second)
	}
}

func TestPolicyDecisions(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		state  Latest
		pr     anytime.Progress
		want   anytime.Decision
	}{
		{"no limits", Limits{}, nil, anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"past the last stage", Limits{}, nil, anytime.Progress{Next: 4, Stages: 4}, anytime.Decision{Reason: anytime.ReasonLastExit}},
		{"a stage beyond the seeds is not free", Limits{Deadline: 35 * time.Millisecond}, nil,
			anytime.Progress{Next: 5, Stages: 6, Elapsed: 20 * time.Millisecond, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonDeadline}},
		{"deadline fits", Limits{Deadline: 50 * time.Millisecond}, nil,
			anytime.Progress{Next: 1, Stages: 4, Elapsed: 20 * time.Millisecond, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"deadline would be missed", Limits{Deadline: 35 * time.Millisecond}, nil,
			anytime.Progress{Next: 1, Stages: 4, Elapsed: 20 * time.Millisecond, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonDeadline}},
		{"max exit reached", Limits{MaxExit: 2}, nil, anytime.Progress{Next: 2, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonMaxExit}},
		{"max exit allows", Limits{MaxExit: 2}, nil, anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"energy fits", Limits{EnergyBudgetJ: 0.5}, nil,
			anytime.Progress{Next: 1, Stages: 4, EnergyJ: 0.2, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"energy over budget", Limits{EnergyBudgetJ: 0.35}, nil,
			anytime.Progress{Next: 1, Stages: 4, EnergyJ: 0.2, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonEnergyBudget}},
		{"cool", Limits{ThermalSoftC: 80, ThermalHardC: 90}, hot(50, false),
			anytime.Progress{Next: 3, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"at the hard limit", Limits{ThermalSoftC: 80, ThermalHardC: 90}, hot(90, false),
			anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"in the soft band", Limits{ThermalSoftC: 80, ThermalHardC: 90}, hot(76, false),
			anytime.Progress{Next: 2, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"throttling derates like heat", Limits{ThermalSoftC: 80, ThermalHardC: 90, ThrottleDerateC: 10}, hot(65, true),
			anytime.Progress{Next: 3, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"without throttling the same heat is fine", Limits{ThermalSoftC: 80, ThermalHardC: 90, ThrottleDerateC: 10}, hot(65, false),
			anytime.Progress{Next: 3, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		// Without a fresh temperature the device may be hot: exit 1 only.
		{"stale reading fails safe", Limits{ThermalHardC: 90}, hot(50, false),
			anytime.Progress{Next: 1, Stages: 4, Start: t0.Add(time.Minute), ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"no temperature source fails safe", Limits{ThermalSoftC: 80}, nil,
			anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"a reading without temperatures fails safe", Limits{ThermalSoftC: 80}, fixed{Reading{Time: t0}},
			anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
		{"no thermal limits need no temperature", Limits{MaxExit: 4}, nil,
			anytime.Progress{Next: 3, Stages: 4, ActiveFraction: 0.5}, anytime.Decision{Continue: true}},
		{"hard thermal wins over the deadline", Limits{ThermalHardC: 90, Deadline: time.Millisecond}, hot(95, false),
			anytime.Progress{Next: 1, Stages: 4, Start: t0, Elapsed: time.Second, ActiveFraction: 0.5}, anytime.Decision{Reason: anytime.ReasonThermal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy(t, Limits{}, tt.state)
			teach(p, 20, 0.5)
			if err := p.SetLimits(tt.limits); err != nil {
				t.Fatal(err)
			}
			p.StartFrame(t0)
			if got := p.Continue(tt.pr); got != tt.want {
				t.Errorf("Continue = %+v, want %+v (check %+v)", got, tt.want, p.LastCheck())
			}
		})
	}
}

func TestThermalExits(t *testing.T) {
	l := Limits{ThermalSoftC: 80, ThermalHardC: 90, ThermalBandC: 10}
	tests := []struct {
		tempC     float64
		throttled bool
		want      int
		hard      bool
	}{
		{20, false, 6, false},
		{70, false, 6, false},
		{72.5, false, 5, false},
		{75, false, 4, false},
		{77.5, false, 3, false},
		{80, false, 2, false},
		{85, false, 2, false},
		{90, false, 1, true},
		{85, true, 1, true}, // 85 + 5 derate
		{70, true, 4, false},
	}
	for _, tt := range tests {
		got, hard := l.ThermalExits(6, tt.tempC, tt.throttled)
		if got != tt.want || hard != tt.hard {
			t.Errorf("ThermalExits(6, %v, %v) = %d, %v; want %d, %v", tt.tempC, tt.throttled, got, hard, tt.want, tt.hard)
		}
	}
	// Depth never rises with temperature.
	prev := 6
	for c := 0.0; c < 100; c += 0.25 {
		n, _ := l.ThermalExits(6, c, false)
		if n > prev {
			t.Fatalf("exits rose from %d to %d at %v °C", prev, n, c)
		}
		prev = n
	}
	if n, _ := (Limits{}).ThermalExits(6, 200, true); n != 6 {
		t.Errorf("no thermal limits: %d exits, want 6", n)
	}
}

func TestLimitsValidate(t *testing.T) {
	bad := map[string]Limits{
		"negative deadline": {Deadline: -1},
		"negative budget":   {EnergyBudgetJ: -1},
		"negative cap":      {PowerCapW: -1},
		"negative max exit": {MaxExit: -1},
		"hard below soft":   {ThermalSoftC: 80, ThermalHardC: 70},
	}
	for name, l := range bad {
		t.Run(name, func(t *testing.T) {
			if err := l.Validate(); err == nil {
				t.Error("Validate: nil error")
			}
			if _, err := NewPolicy(Config{Stages: testSeeds, Device: DeviceSeed{GMACsPerSecond: 1}, Limits: l}); err == nil {
				t.Error("NewPolicy: nil error")
			}
			p := testPolicy(t, Limits{}, nil)
			if err := p.SetLimits(l); err == nil {
				t.Error("SetLimits: nil error")
			}
		})
	}
}

func TestPolicyEnergyBudgetCarriesCredit(t *testing.T) {
	// Stages cost 0.2 J at a = 0.5; budget 0.48 J. A frame alone affords
	// two stages (0.4 J) and banks 0.08 J. A frame may borrow up to
	// borrowShare (0.7) of a stage, 0.14 J: after two frames the bank holds
	// 0.16 J and the third frame takes a third stage (0.6 J, 0.12 over).
	p := testPolicy(t, Limits{}, nil)
	teach(p, 20, 0.5)
	if err := p.SetLimits(Limits{EnergyBudgetJ: 0.48}); err != nil {
		t.Fatal(err)
	}
	var exits []int
	for f := 0; f < 4; f++ {
		p.StartFrame(t0.Add(time.Duration(100+f) * time.Second))
		used, n := 0.0, 0
		for k := 0; k < 4; k++ {
			if k > 0 && !p.Continue(anytime.Progress{Next: k, Stages: 4, EnergyJ: used, ActiveFraction: 0.5}).Continue {
				break
			}
			used += 0.2
			n++
			p.StageDone(anytime.StageCost{Stage: k, ActiveFraction: 0.5, Duration: 20 * time.Millisecond, EnergyJ: 0.2, EnergySource: SourceNVML})
		}
		exits = append(exits, n)
	}
	want := []int{2, 2, 3, 2} // bank 0.08, 0.16, 0.04, 0.12
	for i := range want {
		if exits[i] != want[i] {
			t.Fatalf("exits per frame = %v, want %v", exits, want)
		}
	}
}

func TestPolicyPowerCapFromLedger(t *testing.T) {
	// Frames every 100 ms, idle 0 W: each stage is 0.2 J over 20 ms. A cap
	// of 4 W over 1 s allows 0.4 J per frame on average: two stages.
	p, err := NewPolicy(Config{
		Stages: testSeeds,
		Device: DeviceSeed{GMACsPerSecond: 100, JoulesPerGMAC: 0.1},
		Limits: Limits{PowerCapW: 4, PowerWindow: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	total, frames := 0, 200
	for f := 0; f < frames; f++ {
		start := t0.Add(time.Duration(f) * 100 * time.Millisecond)
		p.StartFrame(start)
		el := time.Duration(0)
		for k := 0; k < 4; k++ {
			if k > 0 && !p.Continue(anytime.Progress{Next: k, Stages: 4, Start: start, Elapsed: el, ActiveFraction: 0.5}).Continue {
				if r := p.LastCheck().Decision.Reason; r != anytime.ReasonPowerCap {
					t.Fatalf("halted for %q, want %q", r, anytime.ReasonPowerCap)
				}
				break
			}
			el += 20 * time.Millisecond
			total++
			p.StageDone(anytime.StageCost{Stage: k, ActiveFraction: 0.5, Duration: 20 * time.Millisecond, EnergyJ: 0.2, EnergySource: SourceNVML})
		}
	}
	// Energy over the run ≤ cap·time + bucket depth (one full frame, 0.8 J).
	got := float64(total) * 0.2
	limit := 4*float64(frames)*0.1 + 0.8
	if got > limit+0.2 || got < limit-0.5 {
		t.Errorf("used %.1f J over %d frames, want just under %.1f J", got, frames, limit)
	}
}

func TestCostModelLearns(t *testing.T) {
	m, err := NewCostModel(testSeeds, DeviceSeed{GMACsPerSecond: 100, JoulesPerGMAC: 0.1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Predict(1, 0.5).Time; got != 20*time.Millisecond {
		t.Fatalf("seed forecast %v, want 20ms", got)
	}
	// The device is twice as slow as seeded, with a steeper mask slope:
	// 30 ms + 40 ms·a. Stage 1 sees a in {0.2, 0.8}.
	for i := 0; i < 200; i++ {
		a := 0.2 + 0.6*float64(i%2)
		m.Observe(1, a, time.Duration((30+40*a)*float64(time.Millisecond)), 0, false)
	}
	for _, a := range []float64{0.2, 0.5, 0.8} {
		want := (30 + 40*a) * float64(time.Millisecond)
		if got := float64(m.Predict(1, a).Time); got < 0.97*want || got > 1.03*want {
			t.Errorf("stage 1 at a=%v: %v, want %v", a, time.Duration(got), time.Duration(want))
		}
	}
	// Stage 2 never ran, but the device-wide scale moved it: its forecast
	// should now be near twice its seed, not the seed.
	if got := m.Predict(2, 0.5).Time; got < 35*time.Millisecond {
		t.Errorf("unobserved stage 2 forecast %v, want ≈ 2× the 20 ms seed", got)
	}
	if got := m.Predict(1, 0.5).EnergyJ; !near(got, 0.2) {
		t.Errorf("energy without observations = %v, want the 0.2 J seed", got)
	}
	if _, err := NewCostModel(nil, DeviceSeed{GMACsPerSecond: 1}, 0); err == nil {
		t.Error("no stages: nil error")
	}
	if _, err := NewCostModel(testSeeds, DeviceSeed{}, 0); err == nil {
		t.Error("zero throughput: nil error")
	}
}

// Limits change from another goroutine while the executor decides; run
// with -race.
func TestPolicySetLimitsConcurrently(t *testing.T) {
	p := testPolicy(t, Limits{}, nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			if err := p.SetLimits(Limits{MaxExit: 1 + i%4, EnergyBudgetJ: float64(i % 3)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	teach(p, 100, 0.5)
	for i := 0; i < 500; i++ {
		p.Continue(anytime.Progress{Next: 1, Stages: 4, ActiveFraction: 0.5})
	}
	wg.Wait()
	if got := p.Limits(); got.MaxExit != 4 {
		t.Errorf("final limits %+v, want MaxExit 4 from the last SetLimits", got)
	}
}

// A Recorder serves as the policy's State and Window: its newest reading's
// temperature halts frames, and its counter-measured energy fills the power
// cap's bucket.
func TestPolicyOverRecorder(t *testing.T) {
	rec := NewRecorder(&script{}, RecorderOptions{Interval: 100 * time.Millisecond})
	p := seededPolicy(t, Config{State: rec, Window: rec})
	teach(p, 20, 0.5)
	if err := p.SetLimits(Limits{ThermalHardC: 90, PowerCapW: 10, PowerWindow: time.Second}); err != nil {
		t.Fatal(err)
	}
	// The device has been drawing 30 W for a second: the bucket is empty
	// and a 0.2 J stage over 20 ms (10 W·20 ms refill = 0.2 J) cannot run
	// on top of the debt.
	for i := 0; i <= 10; i++ {
		rec.Add(Reading{Time: at(100 * i), TotalW: Measured(30, SourceNVML), EnergyJ: Measured(3*float64(i), SourceNVML),
			Temps: []Temp{{Zone: "gpu", C: 60, Source: SourceNVML}}})
	}
	p.StartFrame(at(0))
	p.StartFrame(at(1000))
	if d := p.Continue(anytime.Progress{Next: 1, Stages: 4, Start: at(1000), ActiveFraction: 0.5}); d.Reason != anytime.ReasonPowerCap {
		t.Errorf("after 1 s at 30 W under a 10 W cap: %+v, want power-cap", d)
	}
	rec.Add(Reading{Time: at(1050), TotalW: Measured(30, SourceNVML), EnergyJ: Measured(31.5, SourceNVML),
		Temps: []Temp{{Zone: "gpu", C: 91, Source: SourceNVML}}})
	if d := p.Continue(anytime.Progress{Next: 1, Stages: 4, Start: at(1000), Elapsed: 50 * time.Millisecond, ActiveFraction: 0.5}); d.Reason != anytime.ReasonThermal {
		t.Errorf("at 91 °C with a 90 °C hard limit: %+v, want thermal", d)
	}
}

// latest is a Latest whose reading the test changes.
type latest struct {
	mu sync.Mutex
	r  Reading
	ok bool
}

func (l *latest) Latest() (Reading, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r, l.ok
}

func (l *latest) set(r Reading) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r, l.ok = r, true
}

// TestThermalUnknownIsSaidOnce: the policy says when it starts failing safe
// for want of a temperature, why, and when it stops; not on every frame.
func TestThermalUnknownIsSaidOnce(t *testing.T) {
	state := &latest{}
	var said []string
	p, err := NewPolicy(Config{
		Stages: testSeeds, Device: DeviceSeed{GMACsPerSecond: 100, JoulesPerGMAC: 0.1},
		Limits: Limits{ThermalSoftC: 80, ThermalHardC: 90}, State: state,
		OnThermalUnknown: func(why string) { said = append(said, why) },
	})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(sec int) anytime.Decision {
		start := t0.Add(time.Duration(sec) * time.Second)
		p.StartFrame(start)
		return p.Continue(anytime.Progress{Next: 1, Stages: 4, Start: start, ActiveFraction: 0.5})
	}
	for sec := range 3 {
		if d := frame(sec); d.Reason != anytime.ReasonThermal || p.LastCheck().ThermalUnknown != "no reading yet" {
			t.Fatalf("before any reading: %+v, check %+v; want a thermal halt saying why", d, p.LastCheck())
		}
	}
	state.set(Reading{Time: t0.Add(3 * time.Second), Temps: []Temp{{Zone: "tj", C: 50, Source: SourceSysfs}}})
	if d := frame(3); !d.Continue {
		t.Fatalf("at 50 °C: %+v, want continue", d)
	}
	if d := frame(30); d.Reason != anytime.ReasonThermal { // the sensor went quiet
		t.Fatalf("27 s after the last reading: %+v, want a thermal halt", d)
	}
	want := []string{"no reading yet", "", "the last reading is older than 10s"}
	if !slices.Equal(said, want) {
		t.Errorf("said %q, want %q", said, want)
	}
}

// TestPowerCapNotPinnedByOneAbsurdSample: a meter that once reports an
// energy no device could use (a rail current near the int64 maximum) used
// to leave the bucket so deep in debt that a 10 W cap held every frame at
// exit 1 for minutes. The debt is bounded by one window's allowance.
func TestPowerCapNotPinnedByOneAbsurdSample(t *testing.T) {
	w := &absurdOnce{}
	p, err := NewPolicy(Config{
		Stages: testSeeds, Device: DeviceSeed{GMACsPerSecond: 100, JoulesPerGMAC: 0.1},
		Limits: Limits{PowerCapW: 10, PowerWindow: 5 * time.Second}, Window: w,
	})
	if err != nil {
		t.Fatal(err)
	}
	deep := 0
	for f := 0; f < 200; f++ { // 100 ms apart: 20 s
		start := t0.Add(time.Duration(f) * 100 * time.Millisecond)
		p.StartFrame(start)
		if p.Continue(anytime.Progress{Next: 1, Stages: 4, Start: start, ActiveFraction: 0.5}).Continue && start.After(t0.Add(6*time.Second)) {
			deep++
		}
	}
	if deep == 0 {
		t.Errorf("no frame went past exit 1 in the 14 s after the absurd sample; want the cap to recover within about one 5 s window")
	}
}

// absurdOnce is an EnergyWindow whose first interval holds 9e15 J, then 1 W.
type absurdOnce struct{ n int }

func (a *absurdOnce) EnergyBetween(t0, t1 time.Time) (float64, Source, bool) {
	a.n++
	if a.n == 1 {
		return 9e15, SourceJetson, true
	}
	return t1.Sub(t0).Seconds(), SourceJetson, true
}

// TestStageDoneIgnoresImpossibleEnergy: a stage "using" 1 MJ in 20 ms is a
// meter fault; it must not teach the cost model.
func TestStageDoneIgnoresImpossibleEnergy(t *testing.T) {
	p := testPolicy(t, Limits{}, nil)
	teach(p, 20, 0.5)
	before := p.Predict(1, 0.5).EnergyJ
	p.StartFrame(t0.Add(time.Hour))
	p.StageDone(anytime.StageCost{Stage: 1, ActiveFraction: 0.5, Duration: 20 * time.Millisecond, EnergyJ: 1e6, EnergySource: SourceJetson})
	if after := p.Predict(1, 0.5).EnergyJ; after > 2*before {
		t.Errorf("forecast went from %.3g J to %.3g J after one impossible sample", before, after)
	}
}
