package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/anytime-edge/edge/power/sim"
)

// runSimulation runs the halting policy against the simulated device in
// every scenario of issue 5 (deadline, energy budget, power cap, thermal)
// and prints the table; it fails when a bound is not met.
func runSimulation(_ context.Context, cfg Config, _ *slog.Logger, w io.Writer) error {
	r := sim.Run(cfg.Simulate)
	if err := r.WriteTable(w); err != nil {
		return err
	}
	if !r.OK() {
		return errors.New("simulation: a bound was not met (rows marked NO)")
	}
	return nil
}
