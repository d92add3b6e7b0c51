package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/power/sim"
)

// simulateFlags are the flags of `edge bench --simulate` (and of the
// standalone `simulate` command).
func simulateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Uint64Flag{Name: "sim-seed", Value: 1, Usage: "random seed of the simulated device"},
		&cli.IntFlag{Name: "sim-frames", Value: 2000, Usage: "frames per scenario (the thermal scenario runs three times as many)"},
		&cli.DurationFlag{Name: "sim-period", Value: 100 * time.Millisecond, Usage: "time between frame arrivals"},
	}
}

// runSimulation runs the halting policy against the simulated device in
// every scenario of issue 5 (deadline, energy budget, power cap, thermal)
// and prints the table; it fails when a bound is not met.
func runSimulation(c *cli.Context) error {
	if c.Int("sim-frames") < 100 {
		return fmt.Errorf("--sim-frames %d: want at least 100", c.Int("sim-frames"))
	}
	if c.Duration("sim-period") <= 0 {
		return fmt.Errorf("--sim-period %v: want a positive duration", c.Duration("sim-period"))
	}
	r := sim.Run(sim.Options{
		Seed:   c.Uint64("sim-seed"),
		Frames: c.Int("sim-frames"),
		Period: c.Duration("sim-period"),
	})
	if err := r.WriteTable(c.App.Writer); err != nil {
		return err
	}
	if !r.OK() {
		return errors.New("simulation: a bound was not met (rows marked NO)")
	}
	return nil
}

// simulateCommand is `edge simulate`, the same as `edge bench --simulate`.
func simulateCommand() *cli.Command {
	return &cli.Command{
		Name:   "simulate",
		Usage:  "run the halting policy on a simulated device and check the issue 5 bounds",
		Flags:  simulateFlags(),
		Action: runSimulation,
	}
}
