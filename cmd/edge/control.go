package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// controller applies validated limit changes to the running pipeline: the
// power policy's limits, the executor's threshold and hard deadline. It
// implements telemetry.Controller.
type controller struct {
	mu       sync.Mutex
	policy   *power.Policy
	exec     *anytime.Executor
	stages   int
	snapshot atomic.Bool
}

var _ telemetry.Controller = (*controller)(nil)

// Limits implements telemetry.Controller.
func (c *controller) Limits() telemetry.Limits {
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
func (c *controller) Apply(_ context.Context, ch telemetry.Change) (telemetry.Limits, error) {
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

// Snapshot implements telemetry.Controller: the next frame is published in
// full.
func (c *controller) Snapshot(context.Context) error {
	c.snapshot.Store(true)
	return nil
}

// takeSnapshot reports (once) whether a snapshot was asked for.
func (c *controller) takeSnapshot() bool { return c.snapshot.Swap(false) }

// webCommands runs the live view's limit controls through the same parsing
// and validation as MQTT commands (telemetry.ParseCommand) and answers with
// the acknowledgement MQTT would publish.
type webCommands struct{ ctrl *controller }

func (w webCommands) Command(ctx context.Context, name string, payload []byte) ([]byte, error) {
	ack := telemetry.CmdAck{Name: name}
	cmd, err := telemetry.ParseCommand(name, payload, time.Now())
	ack.CmdID = cmd.CmdID
	switch {
	case errors.Is(err, telemetry.ErrExpired):
		ack.Status, ack.Error = "expired", err.Error()
	case err != nil:
		ack.Status, ack.Error = "rejected", err.Error()
	case cmd.Change.Snapshot:
		ack.Status = "accepted"
		err = w.ctrl.Snapshot(ctx)
	default:
		var l telemetry.Limits
		if l, err = w.ctrl.Apply(ctx, cmd.Change); err != nil {
			ack.Status, ack.Error = "rejected", err.Error()
		} else {
			ack.Status, ack.Limits = "accepted", &l
		}
	}
	return json.Marshal(ack)
}
