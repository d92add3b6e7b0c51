package anytime

import (
	"time"

	"github.com/anytime-edge/edge/power"
)

// Policy decides, before each stage after the first, whether a frame goes on.
// The executor calls it from one goroutine; an implementation whose limits
// change from elsewhere (a remote command) makes that safe itself.
type Policy interface {
	// StartFrame is called once when a frame enters the executor.
	StartFrame(start time.Time)
	// Continue is asked before stage p.Next (never before stage 0).
	Continue(p power.Progress) power.Decision
	// StageDone reports what a finished stage cost.
	StageDone(c power.StageCost)
}

// Meter attributes energy to a stage that ran from start to end doing gmacs
// GMACs of work. ok is false when it cannot say.
type Meter interface {
	StageEnergy(start, end time.Time, gmacs float64) (joules float64, src power.Source, ok bool)
}
