package sink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// Policy is what Control needs of power.Policy.
type Policy interface {
	Limits() power.Limits
	SetLimits(power.Limits) error
}

// Executor is what Control needs of anytime.Executor.
type Executor interface {
	Threshold() float32
	SetThreshold(float32)
	SetHardDeadline(time.Duration)
}

// Control applies validated limit changes to the running pipeline — the
// policy's limits, the executor's threshold and hard deadline — and holds
// snapshot requests for Results. It implements telemetry.Controller; its
// methods are safe for concurrent use.
type Control struct {
	mu       sync.Mutex
	policy   Policy
	exec     Executor
	stages   int
	snapshot atomic.Bool
}

var _ telemetry.Controller = (*Control)(nil)

// NewControl controls policy and exec for a bundle of stages exits.
func NewControl(policy Policy, exec Executor, stages int) *Control {
	return &Control{policy: policy, exec: exec, stages: stages}
}

// Limits implements telemetry.Controller.
func (c *Control) Limits() telemetry.Limits {
	l := c.policy.Limits()
	return telemetry.Limits{
		EnergyBudgetMJ: l.EnergyBudgetJ * 1000,
		PowerCapW:      l.PowerCapW,
		Threshold:      float64(c.exec.Threshold()),
		MaxExit:        l.MaxExit,
		DeadlineMS:     float64(l.Deadline) / float64(time.Millisecond),
	}
}

// Apply implements telemetry.Controller: every field of ch, or none.
func (c *Control) Apply(_ context.Context, ch telemetry.Change) (telemetry.Limits, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.policy.Limits()
	if ch.MaxExit != nil {
		if *ch.MaxExit > c.stages {
			return c.Limits(), fmt.Errorf("max exit %d: the bundle has %d exits", *ch.MaxExit, c.stages)
		}
		l.MaxExit = *ch.MaxExit
	}
	if ch.EnergyBudgetMJ != nil {
		l.EnergyBudgetJ = *ch.EnergyBudgetMJ / 1000
	}
	if ch.PowerCapW != nil {
		l.PowerCapW = *ch.PowerCapW
	}
	if ch.DeadlineMS != nil {
		l.Deadline = time.Duration(*ch.DeadlineMS * float64(time.Millisecond))
	}
	if err := c.policy.SetLimits(l); err != nil {
		return c.Limits(), err
	}
	if ch.Threshold != nil {
		c.exec.SetThreshold(float32(*ch.Threshold))
	}
	c.exec.SetHardDeadline(l.Deadline)
	return c.Limits(), nil
}

// Snapshot implements telemetry.Controller: the next finished frame is
// published in full (see Results).
func (c *Control) Snapshot(context.Context) error {
	c.snapshot.Store(true)
	return nil
}

// TakeSnapshot reports, once, whether a snapshot was asked for; it is
// ResultsOptions.Snapshot.
func (c *Control) TakeSnapshot() bool { return c.snapshot.Swap(false) }
