package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/backend"
)

// powerCommand is `edge power`: a tegrastats-like view of the device's
// power, temperatures and throttle state, from whichever backend reads.
func powerCommand() *cli.Command {
	return &cli.Command{
		Name:  "power",
		Usage: "show rails, total power, temperatures and throttle state (tegrastats-like)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Usage: "keep printing a reading every --interval until interrupted"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON reading per line"},
			&cli.StringFlag{Name: "sysfs", Value: "/", Usage: "root of the device's file system for the Jetson backend", EnvVars: []string{"EDGE_SYSFS"}},
			&cli.StringFlag{Name: "backend", Value: "auto", Usage: "auto, nvml, jetson or estimate", EnvVars: []string{"EDGE_POWER_BACKEND"}},
			&cli.StringFlag{Name: "nvml-lib", Usage: "path of libnvidia-ml.so.1 (default: the loader's search)", EnvVars: []string{"EDGE_NVML_LIB"}},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "time between readings with --watch"},
		},
		Action: runPower,
	}
}

func runPower(c *cli.Context) error {
	log, err := newLogger(c, false)
	if err != nil {
		return err
	}
	kind, err := backend.ParseKind(c.String("backend"))
	if err != nil {
		return fmt.Errorf("--backend: %w", err)
	}
	if c.Duration("interval") <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration", c.Duration("interval"))
	}
	ctx := c.Context
	s, choice, err := backend.Open(ctx, backend.Options{
		Kind: kind, SysfsRoot: c.String("sysfs"), NVMLLibrary: c.String("nvml-lib"), Logger: log,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	w := c.App.Writer
	asJSON := c.Bool("json")
	if !asJSON {
		fmt.Fprint(w, choice.String())
	}
	enc := json.NewEncoder(w)
	lastMissing := ""
	show := func() error {
		r, err := s.Sample(ctx)
		if err != nil {
			return fmt.Errorf("power sample: %w", err)
		}
		if asJSON {
			return enc.Encode(r)
		}
		// In text, say what is unreadable only when it changes.
		if m := fmt.Sprint(r.Missing); m == lastMissing {
			r.Missing = nil
		} else {
			lastMissing = m
		}
		_, err = fmt.Fprint(w, r.Text())
		return err
	}
	if err := show(); err != nil || !c.Bool("watch") {
		return err
	}
	t := time.NewTicker(c.Duration("interval"))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := show(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// probePower says which power backend auto-selection picks on this host and
// why each other one was passed over, for `edge probe`.
func probePower(ctx context.Context) string {
	return probePowerAt(ctx, "/")
}

// probePowerAt is probePower with the Jetson backend rooted at sysfsRoot.
func probePowerAt(ctx context.Context, sysfsRoot string) string {
	s, choice, err := backend.Open(ctx, backend.Options{SysfsRoot: sysfsRoot})
	if err != nil {
		return fmt.Sprintf("%spower backend: none: %v\n", choice, err)
	}
	defer s.Close()
	return choice.String()
}

// powerLimitFlags are the power flags `edge infer` and `edge run` add to
// their own --deadline and --max-exit.
func powerLimitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "energy-budget", Usage: "per-frame energy budget in joules, met on average (0: none)"},
		&cli.Float64Flag{Name: "power-cap", Usage: "average power cap in watts over --power-window (0: none)"},
		&cli.DurationFlag{Name: "power-window", Value: power.DefaultPowerWindow, Usage: "sliding window of --power-cap"},
		&cli.Float64Flag{Name: "thermal-soft", Usage: "°C: fewer exits as the hottest sensor nears it (0: none)"},
		&cli.Float64Flag{Name: "thermal-hard", Usage: "°C: exit 1 only at or above it (0: none)"},
		&cli.StringFlag{Name: "power-backend", Value: "auto", Usage: "auto, nvml, jetson or estimate", EnvVars: []string{"EDGE_POWER_BACKEND"}},
		&cli.StringFlag{Name: "sysfs", Value: "/", Usage: "root of the device's file system for the Jetson backend", EnvVars: []string{"EDGE_SYSFS"}},
		&cli.StringFlag{Name: "nvml-lib", Usage: "path of libnvidia-ml.so.1", EnvVars: []string{"EDGE_NVML_LIB"}},
		&cli.DurationFlag{Name: "power-interval", Value: power.DefaultInterval, Usage: "power sampling period"},
	}
}

// powerLimitsFromFlags reads --deadline, --max-exit and powerLimitFlags into
// Limits; a flag the command lacks reads as zero (no limit).
func powerLimitsFromFlags(c *cli.Context) (power.Limits, error) {
	l := power.Limits{
		Deadline:      c.Duration("deadline"),
		MaxExit:       c.Int("max-exit"),
		EnergyBudgetJ: c.Float64("energy-budget"),
		PowerCapW:     c.Float64("power-cap"),
		PowerWindow:   c.Duration("power-window"),
		ThermalSoftC:  c.Float64("thermal-soft"),
		ThermalHardC:  c.Float64("thermal-hard"),
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("power flags: %w", err)
	}
	return l, nil
}

// powerRuntime is the power side of a running pipeline: the halting policy
// for the executor's Config.Policy, the recorder for its Config.Meter (and
// for telemetry), and Stop to end sampling and close the backend.
type powerRuntime struct {
	Policy   *power.Policy
	Recorder *power.Recorder
	Choice   backend.Choice
	stop     func()
	sampler  power.Sampler
	wg       sync.WaitGroup
}

// startPower opens the power backend the flags name, starts sampling it in
// the background and builds the halting policy over it. seeds are the
// bundle's per-stage GMACs; dev the first guess of the engine's speed
// (power.DefaultDeviceSeed(provider) will do). Call Stop when done.
func startPower(ctx context.Context, c *cli.Context, seeds []power.StageSeed, dev power.DeviceSeed, log *slog.Logger) (*powerRuntime, error) {
	limits, err := powerLimitsFromFlags(c)
	if err != nil {
		return nil, err
	}
	kind, err := backend.ParseKind(c.String("power-backend"))
	if err != nil {
		return nil, fmt.Errorf("--power-backend: %w", err)
	}
	s, choice, err := backend.Open(ctx, backend.Options{
		Kind: kind, SysfsRoot: c.String("sysfs"), NVMLLibrary: c.String("nvml-lib"), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	rec := power.NewRecorder(s, power.RecorderOptions{Interval: c.Duration("power-interval"), Logger: log})
	// One reading before the first frame, so that its halting decisions
	// already see the temperature and throttle state (the background
	// sampler starts after this returns).
	if rd, err := s.Sample(ctx); err == nil {
		rec.Add(rd)
	} else {
		log.Warn("first power sample failed", "err", err)
	}
	p, err := power.NewPolicy(power.Config{Stages: seeds, Device: dev, Limits: limits, State: rec, Window: rec})
	if err != nil {
		s.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	pr := &powerRuntime{Policy: p, Recorder: rec, Choice: choice, stop: cancel, sampler: s}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		_ = rec.Run(runCtx)
	}()
	log.Info("power", "backend", choice.Kind, "limits", fmt.Sprintf("%+v", limits))
	return pr, nil
}

// Stop ends sampling and closes the backend.
func (pr *powerRuntime) Stop() error {
	pr.stop()
	pr.wg.Wait()
	return pr.sampler.Close()
}
