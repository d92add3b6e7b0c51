package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/power/backend"
)

// runPower prints one reading, or one every cfg.Power.Interval with
// --watch until ctx ends.
func runPower(ctx context.Context, cfg Config, log *slog.Logger, w io.Writer) error {
	s, choice, err := backend.Open(ctx, backend.Options{
		Kind: cfg.Power.Backend, SysfsRoot: cfg.Power.Sysfs, NVMLLibrary: cfg.Power.NVMLLib, Logger: log,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	asJSON := cfg.Monitor.JSON
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
		r.DropImplausible() // shown as missing, as the policy sees them
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
	if err := show(); err != nil || !cfg.Monitor.Watch {
		return err
	}
	t := time.NewTicker(cfg.Power.Interval)
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

// powerRuntime is the power side of a running pipeline: the halting policy
// for the executor's Config.Policy, the recorder for its Config.Meter (and
// for telemetry), and Stop to end sampling and close the backend.
type powerRuntime struct {
	Policy   *power.Policy
	Recorder *power.Recorder
	Choice   backend.Choice
	// OnThermalUnknown, when set before frames run, is told what the
	// policy's fail-safe says (power.Config.OnThermalUnknown), after the
	// log line.
	OnThermalUnknown func(why string)
	stop             func()
	sampler          power.Sampler
	wg               sync.WaitGroup
}

// startPower opens the power backend cfg names, starts sampling it in the
// background and builds the halting policy over it with cfg's limits. seeds
// are the bundle's per-stage GMACs; dev the first guess of the engine's
// speed (power.DefaultDeviceSeed(provider) will do). Call Stop when done.
func startPower(ctx context.Context, cfg PowerConfig, seeds []power.StageSeed, dev power.DeviceSeed, log *slog.Logger) (*powerRuntime, error) {
	limits := cfg.Limits
	s, choice, err := backend.Open(ctx, backend.Options{
		Kind: cfg.Backend, SysfsRoot: cfg.Sysfs, NVMLLibrary: cfg.NVMLLib, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	rec := power.NewRecorder(s, power.RecorderOptions{Interval: cfg.Interval, Logger: log})
	// One reading before the first frame, so that its halting decisions
	// already see the temperature and throttle state (the background
	// sampler starts after this returns).
	if rd, err := s.Sample(ctx); err == nil {
		rec.Add(rd)
	} else {
		log.Warn("first power sample failed", "err", err)
	}
	var pr *powerRuntime
	p, err := power.NewPolicy(power.Config{Stages: seeds, Device: dev, Limits: limits, State: rec, Window: rec,
		OnThermalUnknown: func(why string) {
			if why != "" {
				log.Warn("no fresh temperature under thermal limits: frames halt at exit 1", "why", why)
			} else {
				log.Info("temperature known again: thermal limits back in force")
			}
			if pr.OnThermalUnknown != nil {
				pr.OnThermalUnknown(why)
			}
		}})
	if err != nil {
		s.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	pr = &powerRuntime{Policy: p, Recorder: rec, Choice: choice, stop: cancel, sampler: s}
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
