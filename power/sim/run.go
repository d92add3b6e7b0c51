package sim

import (
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/power"
)

// Frame is what one simulated frame did.
type Frame struct {
	Start    time.Time
	Exits    int // exits produced, 1-based depth
	Duration time.Duration
	EnergyJ  float64
	Reason   anytime.Reason
	TempC    float64 // device temperature at the frame's start
	// CumTime and CumEnergy are the frame's elapsed time and energy at each
	// exit it reached.
	CumTime   []time.Duration
	CumEnergy []float64
}

// Stream runs frames arriving every period (a frame that arrives while the
// device is busy starts when it is free). ambient, when not nil, sets the
// ambient temperature before frame i.
type Stream struct {
	Frames  int
	Period  time.Duration
	Ambient func(i int) float64
}

// Run drives p over the stream on d and returns every frame.
func (s Stream) Run(d *Device, p anytime.Policy) []Frame {
	n := len(d.spec.Stages)
	out := make([]Frame, 0, s.Frames)
	for i := 0; i < s.Frames; i++ {
		if s.Ambient != nil {
			d.SetAmbient(s.Ambient(i))
		}
		d.Idle(Epoch.Add(time.Duration(i) * s.Period))
		start := d.Now()
		f := Frame{Start: start, TempC: d.TempC(), Reason: anytime.ReasonLastExit}
		p.StartFrame(start)
		a := 1.0
		for k := 0; k < n; k++ {
			if k > 0 {
				// The unconfident fraction shrinks after every exit.
				if k == 1 {
					a = 0.4 + 0.3*d.rng.Float64()
				} else {
					a *= 0.5 + 0.3*d.rng.Float64()
				}
				dec := p.Continue(anytime.Progress{
					Next: k, Stages: n, Start: start, Elapsed: f.Duration,
					ActiveFraction: a, EnergyJ: f.EnergyJ,
				})
				if !dec.Continue {
					f.Reason = dec.Reason
					break
				}
			}
			dur, j := d.RunStage(k, a)
			f.Duration += dur
			f.EnergyJ += j
			f.Exits = k + 1
			f.CumTime = append(f.CumTime, f.Duration)
			f.CumEnergy = append(f.CumEnergy, f.EnergyJ)
			p.StageDone(anytime.StageCost{
				Stage: k, ActiveFraction: a, Duration: dur,
				EnergyJ: j, EnergySource: power.SourceSim, GMACs: d.GMACs(k, a),
			})
		}
		out = append(out, f)
	}
	return out
}

// Unlimited is a policy that runs every stage.
type Unlimited struct{}

// StartFrame implements anytime.Policy.
func (Unlimited) StartFrame(time.Time) {}

// Continue implements anytime.Policy: always.
func (Unlimited) Continue(anytime.Progress) anytime.Decision { return anytime.Decision{Continue: true} }

// StageDone implements anytime.Policy.
func (Unlimited) StageDone(anytime.StageCost) {}
