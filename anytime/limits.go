package anytime

import (
	"sync"
	"time"

	"github.com/anytime-edge/edge/power"
)

// Limits is the built-in halting policy: a maximum exit and a per-frame
// deadline. It predicts each stage's time as a running average of its past
// runs (not scaled by the active fraction: a masked stage on a dense engine
// costs the same whatever it computes) and halts before a stage that would
// end past the deadline. Its limits may be changed from any goroutine.
type Limits struct {
	mu       sync.Mutex
	maxExit  int
	deadline time.Duration
	// stageTime is the smoothed wall time of each stage.
	stageTime []time.Duration
}

// NewLimits makes a Limits policy; maxExit ≤ 0 and deadline ≤ 0 mean none.
func NewLimits(maxExit int, deadline time.Duration) *Limits {
	return &Limits{maxExit: maxExit, deadline: deadline}
}

// Set changes both limits.
func (l *Limits) Set(maxExit int, deadline time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxExit, l.deadline = maxExit, deadline
}

// StartFrame implements Policy.
func (l *Limits) StartFrame(time.Time) {}

// Continue implements Policy.
func (l *Limits) Continue(p power.Progress) power.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxExit > 0 && p.Next >= l.maxExit {
		return power.Decision{Reason: power.ReasonMaxExit}
	}
	if l.deadline > 0 {
		predicted := time.Duration(0)
		if p.Next < len(l.stageTime) {
			predicted = l.stageTime[p.Next]
		}
		if p.Elapsed+predicted > l.deadline {
			return power.Decision{Reason: power.ReasonDeadline}
		}
	}
	return power.Decision{Continue: true}
}

// StageDone implements Policy.
func (l *Limits) StageDone(c power.StageCost) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.stageTime) <= c.Stage {
		l.stageTime = append(l.stageTime, 0)
	}
	t := c.Duration
	if prev := l.stageTime[c.Stage]; prev > 0 {
		t = (prev*3 + t) / 4
	}
	l.stageTime[c.Stage] = t
}
