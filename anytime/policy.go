package anytime

import "time"

// This file is the halting contract: the executor describes a frame's
// progress before each stage, a Policy answers continue or halt with a
// Reason, and the executor reports what each stage actually cost. The
// executor declares it because it consumes it; power.Policy implements it
// and power/sim drives it.

// Policy decides, before each stage after the first, whether a frame goes on.
// The executor calls it from one goroutine; an implementation whose limits
// change from elsewhere (a remote command) makes that safe itself.
type Policy interface {
	// StartFrame is called once when a frame enters the executor.
	StartFrame(start time.Time)
	// Continue is asked before stage p.Next (never before stage 0).
	Continue(p Progress) Decision
	// StageDone reports what a finished stage cost.
	StageDone(c StageCost)
}

// Meter attributes energy to a stage that ran from start to end doing gmacs
// GMACs of work. ok is false when it cannot say.
type Meter interface {
	StageEnergy(start, end time.Time, gmacs float64) (joules float64, src Source, ok bool)
}

// Source names where a measured value came from (a sensor, or an
// estimate), so an estimate is never passed off as a measurement. The
// executor only carries a Meter's source through to its Exits; the values
// are power's (power.Source is this type).
type Source string

// Reason says why a frame stopped where it did. The values are the ones the
// MQTT result message carries.
type Reason string

// Halt reasons.
const (
	ReasonLastExit     Reason = "last-exit"
	ReasonAllConfident Reason = "all-confident"
	ReasonDeadline     Reason = "deadline"
	ReasonEnergyBudget Reason = "energy-budget"
	ReasonPowerCap     Reason = "power-cap"
	ReasonThermal      Reason = "thermal"
	ReasonMaxExit      Reason = "max-exit"
	ReasonError        Reason = "error"
)

// Progress is what the executor knows about a frame before it runs the next
// stage.
type Progress struct {
	// Next is the 0-based index of the stage about to run (always ≥ 1:
	// stage 0 and its exit always run).
	Next int
	// Stages is the number of stages in the bundle.
	Stages int
	// Start is when the frame entered the executor.
	Start time.Time
	// Elapsed is the time spent on the frame so far.
	Elapsed time.Duration
	// ActiveFraction is the fraction of output pixels the next stage must
	// compute (the rest are frozen).
	ActiveFraction float64
	// EnergyJ is the energy the frame has used so far, in joules; zero when
	// no meter is attached.
	EnergyJ float64
}

// Decision is a policy's answer before a stage.
type Decision struct {
	Continue bool
	// Reason is set when Continue is false.
	Reason Reason
}

// StageCost is what one stage of one frame actually cost.
type StageCost struct {
	// Stage is the 0-based stage index.
	Stage int
	// ActiveFraction is the fraction of output pixels it computed.
	ActiveFraction float64
	// Duration is the stage's wall time, exit and masking included.
	Duration time.Duration
	// EnergyJ is the stage's energy in joules (zero when unknown) and
	// EnergySource where it came from.
	EnergyJ      float64
	EnergySource Source
	// GMACs is the stage's effective GMACs (MACs/2^30) at ActiveFraction.
	GMACs float64
}
