package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anytime-edge/edge/power"
)

// Options configure a Report.
type Options struct {
	Seed uint64
	Spec Spec
	// Frames per scenario (the thermal scenario runs three phases of this
	// many frames each). Default 2000.
	Frames int
	// Period between frame arrivals (default 100 ms, 10 fps).
	Period time.Duration
	// SeedError is the relative error of the throughput the policy is
	// seeded with, so every scenario includes learning the device (default
	// -0.2: the seed thinks the device is 20% slower than it is).
	SeedError float64
	// HotAmbientC is the thermal scenario's hot-phase ambient (default 50
	// °C, hot enough that even two exits keep the device above the soft
	// limit).
	HotAmbientC float64
}

func (o Options) withDefaults() Options {
	if len(o.Spec.Stages) == 0 {
		o.Spec = DefaultSpec()
	}
	if o.Frames <= 0 {
		o.Frames = 2000
	}
	if o.Period <= 0 {
		o.Period = 100 * time.Millisecond
	}
	if o.SeedError == 0 {
		o.SeedError = -0.2
	}
	if o.HotAmbientC == 0 {
		o.HotAmbientC = 50
	}
	return o
}

// Calibration is what an unlimited run of the stream says about the device:
// the median elapsed time and energy at each exit, the median cost of each
// stage, and the average power at each depth at the stream's period.
type Calibration struct {
	MedianTime        []time.Duration
	MedianEnergy      []float64
	MedianStageEnergy []float64
	DepthPowerW       []float64
}

// Calibrate runs every stage of every frame and takes medians.
func Calibrate(o Options) Calibration {
	o = o.withDefaults()
	d := NewDevice(o.Spec, o.Seed)
	fs := Stream{Frames: o.Frames, Period: o.Period}.Run(d, Unlimited{})
	n := len(o.Spec.Stages)
	var c Calibration
	for k := 0; k < n; k++ {
		ts := make([]float64, len(fs))
		es := make([]float64, len(fs))
		ss := make([]float64, len(fs))
		for i, f := range fs {
			ts[i] = f.CumTime[k].Seconds()
			es[i] = f.CumEnergy[k]
			ss[i] = f.CumEnergy[k]
			if k > 0 {
				ss[i] -= f.CumEnergy[k-1]
			}
		}
		mt, me := median(ts), median(es)
		c.MedianTime = append(c.MedianTime, time.Duration(mt*float64(time.Second)))
		c.MedianEnergy = append(c.MedianEnergy, me)
		c.MedianStageEnergy = append(c.MedianStageEnergy, median(ss))
		p := o.Period.Seconds()
		c.DepthPowerW = append(c.DepthPowerW, (me+o.Spec.IdleW*(p-mt))/p)
	}
	return c
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Check is one bound a scenario must meet.
type Check struct {
	Scenario string
	Limit    string
	Frames   int
	// MeanExits is the scenario's mean depth.
	MeanExits float64
	Measure   string
	Value     string
	Bound     string
	OK        bool
}

// Report is the outcome of every scenario.
type Report struct {
	Options     Options
	Calibration Calibration
	Checks      []Check
	// Thermal phases' mean exits (last third of each phase) and the
	// hottest the device got.
	ThermalCool, ThermalHot, ThermalCooled float64
	MaxTempC                               float64
	// ThermalBands is the thermal scenario's mean depth by the temperature
	// at the frame's start.
	ThermalBands []Band
}

// Band is the mean depth of the frames that started in [LoC, HiC).
type Band struct {
	LoC, HiC  float64
	Frames    int
	MeanExits float64
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func (o Options) policy(d *Device, l power.Limits) *power.Policy {
	rate := o.Spec.GMACsPerSecond * (1 + o.SeedError)
	stageW := 0.0
	for _, s := range o.Spec.Stages {
		stageW += s.PowerW
	}
	stageW /= float64(len(o.Spec.Stages))
	p, err := power.NewPolicy(power.Config{
		Stages: o.Spec.Seeds(),
		Device: power.DeviceSeed{
			GMACsPerSecond: rate,
			JoulesPerGMAC:  (stageW - o.Spec.IdleW) / rate,
			IdleW:          o.Spec.IdleW,
		},
		Limits: l,
		State:  d,
		Window: d,
	})
	if err != nil {
		// The limits are built here from a calibration; an error is a bug.
		panic(fmt.Sprintf("sim: policy: %v", err))
	}
	return p
}

func meanExits(fs []Frame) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := 0
	for _, f := range fs {
		s += f.Exits
	}
	return float64(s) / float64(len(fs))
}

// Run calibrates the device and runs the four scenarios of issue 5 item 6:
// deadline, energy budget, power cap and thermal limits.
func Run(o Options) Report {
	o = o.withDefaults()
	cal := Calibrate(o)
	r := Report{Options: o, Calibration: cal}
	seed := o.Seed
	next := func() uint64 { seed++; return seed }

	// Deadline between the exit-2 and exit-3 median times.
	{
		dl := (cal.MedianTime[1] + cal.MedianTime[2]) / 2
		d := NewDevice(o.Spec, next())
		fs := Stream{Frames: o.Frames, Period: o.Period}.Run(d, o.policy(d, power.Limits{Deadline: dl}))
		over := 0
		ts := make([]float64, len(fs))
		for i, f := range fs {
			if f.Duration > dl {
				over++
			}
			ts[i] = ms(f.Duration)
		}
		slices.Sort(ts)
		frac := float64(over) / float64(len(fs))
		r.Checks = append(r.Checks, Check{
			Scenario: "deadline", Limit: fmt.Sprintf("%.1f ms", ms(dl)), Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "frames over the deadline",
			Value:   fmt.Sprintf("%d (%.2f%%), p99 %.1f ms, max %.1f ms", over, 100*frac, ts[len(ts)*99/100], ts[len(ts)-1]),
			Bound:   "≤ 1%", OK: frac <= 0.01,
		})
	}

	// Energy budget between the exit-2 and exit-3 median energies.
	{
		b := (cal.MedianEnergy[1] + cal.MedianEnergy[2]) / 2
		d := NewDevice(o.Spec, next())
		fs := Stream{Frames: o.Frames, Period: o.Period}.Run(d, o.policy(d, power.Limits{EnergyBudgetJ: b}))
		// A frame's overshoot is measured against the cost of the stage
		// that carried it over the budget (its last one).
		sum, worst, worstShare := 0.0, math.Inf(-1), 0.0
		for _, f := range fs {
			sum += f.EnergyJ
			over := f.EnergyJ - b
			worst = max(worst, over)
			if over > 0 {
				n := len(f.CumEnergy)
				last := f.CumEnergy[n-1]
				if n > 1 {
					last -= f.CumEnergy[n-2]
				}
				worstShare = max(worstShare, over/last)
			}
		}
		mean := sum / float64(len(fs))
		dev := mean/b - 1
		lim := fmt.Sprintf("%.3f J", b)
		r.Checks = append(r.Checks, Check{
			Scenario: "energy", Limit: lim, Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "mean energy vs budget", Value: fmt.Sprintf("%.3f J (%+.2f%%)", mean, 100*dev),
			Bound: "within ±5%", OK: math.Abs(dev) <= 0.05,
		}, Check{
			Scenario: "energy", Limit: lim, Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "worst frame over budget", Value: fmt.Sprintf("%+.3f J = %.2f of its last stage", worst, worstShare),
			Bound: "≤ 1 stage (the last one run)", OK: worstShare <= 1,
		})
	}

	// Power cap between the exit-2 and exit-3 average powers.
	{
		capW := (cal.DepthPowerW[1] + cal.DepthPowerW[2]) / 2
		w := power.DefaultPowerWindow
		d := NewDevice(o.Spec, next())
		fs := Stream{Frames: o.Frames, Period: o.Period}.Run(d, o.policy(d, power.Limits{PowerCapW: capW, PowerWindow: w}))
		peak := d.MaxWindowPower(w, Epoch.Add(w))
		dev := peak/capW - 1
		r.Checks = append(r.Checks, Check{
			Scenario: "power", Limit: fmt.Sprintf("%.2f W over %v", capW, w), Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "peak windowed average", Value: fmt.Sprintf("%.2f W (%+.2f%%)", peak, 100*dev),
			Bound: "≤ cap + 5%", OK: dev <= 0.05,
		})
	}

	// Thermal: cool, hot, cool again.
	{
		l := power.Limits{ThermalSoftC: 70, ThermalHardC: 85}
		d := NewDevice(o.Spec, next())
		n := o.Frames
		amb := func(i int) float64 {
			if i >= n && i < 2*n {
				return o.HotAmbientC
			}
			return o.Spec.AmbientC
		}
		fs := Stream{Frames: 3 * n, Period: o.Period, Ambient: amb}.Run(d, o.policy(d, l))
		tail := func(ph int) []Frame { return fs[ph*n+2*n/3 : (ph+1)*n] }
		r.ThermalCool, r.ThermalHot, r.ThermalCooled = meanExits(tail(0)), meanExits(tail(1)), meanExits(tail(2))
		hottest := 0.0
		for _, f := range fs {
			hottest = max(hottest, f.TempC)
		}
		r.MaxTempC = hottest
		edges := []float64{math.Inf(-1), l.ThermalSoftC - 10, l.ThermalSoftC - 7.5, l.ThermalSoftC - 5, l.ThermalSoftC - 2.5, l.ThermalSoftC, l.ThermalHardC, math.Inf(1)}
		for i := 1; i < len(edges); i++ {
			var in []Frame
			for _, f := range fs {
				if f.TempC >= edges[i-1] && f.TempC < edges[i] {
					in = append(in, f)
				}
			}
			r.ThermalBands = append(r.ThermalBands, Band{LoC: edges[i-1], HiC: edges[i], Frames: len(in), MeanExits: meanExits(in)})
		}
		lim := fmt.Sprintf("soft %.0f °C, hard %.0f °C", l.ThermalSoftC, l.ThermalHardC)
		r.Checks = append(r.Checks, Check{
			Scenario: "thermal", Limit: lim, Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "mean exits cool → hot → cooled",
			Value:   fmt.Sprintf("%.2f → %.2f → %.2f", r.ThermalCool, r.ThermalHot, r.ThermalCooled),
			Bound:   "falls when hot, recovers", OK: r.ThermalHot < r.ThermalCool-0.5 && r.ThermalCooled >= r.ThermalCool-0.05,
		}, Check{
			Scenario: "thermal", Limit: lim, Frames: len(fs), MeanExits: meanExits(fs),
			Measure: "hottest", Value: fmt.Sprintf("%.1f °C", hottest),
			Bound: "< hard limit", OK: hottest < l.ThermalHardC,
		})
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteTable prints the calibration and the checks as aligned text.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Calibration
	fmt.Fprintf(tw, "device: %d stages, %d frames per scenario at %v, seed %d, policy seeded %+.0f%% off the true throughput\n",
		len(c.MedianTime), r.Options.Frames, r.Options.Period, r.Options.Seed, 100*r.Options.SeedError)
	fmt.Fprintln(tw, "exit\tmedian time\tmedian energy\tmedian stage energy\tavg power at this depth")
	for k := range c.MedianTime {
		fmt.Fprintf(tw, "%d\t%.1f ms\t%.3f J\t%.3f J\t%.2f W\n", k+1, ms(c.MedianTime[k]), c.MedianEnergy[k], c.MedianStageEnergy[k], c.DepthPowerW[k])
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "scenario\tlimit\tframes\tmean exits\tmeasure\tvalue\tbound\tok")
	for _, ch := range r.Checks {
		ok := "yes"
		if !ch.OK {
			ok = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%s\t%s\t%s\t%s\n", ch.Scenario, ch.Limit, ch.Frames, ch.MeanExits, ch.Measure, ch.Value, ch.Bound, ok)
	}
	if len(r.ThermalBands) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "thermal: temperature at frame start\tframes\tmean exits")
		for _, b := range r.ThermalBands {
			if b.Frames == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%.2f\n", bandName(b), b.Frames, b.MeanExits)
		}
	}
	return tw.Flush()
}

func bandName(b Band) string {
	switch {
	case math.IsInf(b.LoC, -1):
		return fmt.Sprintf("below %.1f °C", b.HiC)
	case math.IsInf(b.HiC, 1):
		return fmt.Sprintf("%.1f °C and above", b.LoC)
	}
	return fmt.Sprintf("%.1f–%.1f °C", b.LoC, b.HiC)
}

// String renders the table.
func (r Report) String() string {
	var b strings.Builder
	_ = r.WriteTable(&b)
	return b.String()
}
