package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/internal/npy"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

func inferCommand() *cli.Command {
	return &cli.Command{
		Name:      "infer",
		Usage:     "run a bundle on images (or a tensor) and write every exit's result",
		ArgsUsage: "[IMAGE...]",
		Flags:     flags(engineFlags(), limitFlags(), powerFlags(), []cli.Flag{powerIntervalFlag()}, inferFlags(), telemetryFlags()),
		Action:    action(inferConfig, runInfer),
	}
}

// inferInput is one thing to run: an image file or a preprocessed tensor.
type inferInput struct {
	name   string // file name, used for outputs
	path   string
	tensor bool
}

// runInfer is `edge infer`: every input once, each failure reported and
// the rest still written.
func runInfer(ctx context.Context, cfg Config, _ io.Writer) error {
	log := newLogger(cfg.Log)
	inputs := cfg.Infer.Inputs
	b, engine, err := openBundle(cfg.Engine, cfg.Engine.Bundle, log)
	if err != nil {
		return err
	}
	defer engine.Close()
	if err := cfg.checkBundle(b); err != nil {
		return err
	}
	pw, err := startPower(ctx, cfg.Power, stageSeeds(b), power.DefaultDeviceSeed(engine.Provider(0)), log)
	if err != nil {
		return err
	}
	defer pw.Stop()
	r := &inferRunner{bundle: b, log: log, out: cfg.Infer.Out, dump: cfg.Infer.Dump}
	if b.Task == bundle.TaskKeypoints {
		r.pose = newPose(b)
	}
	x, err := anytime.New(b, engine, anytime.Config{
		Policy:       pw.Policy,
		Meter:        pw.Recorder,
		HardDeadline: cfg.Power.Limits.Deadline,
		OnExit:       r.onExit,
	})
	if err != nil {
		return err
	}
	if err := tune(ctx, x, b, cfg.Engine, log); err != nil {
		return err
	}
	r.exec = x
	if cfg.Telemetry != nil {
		if r.fleet, err = openFleet(ctx, *cfg.Telemetry, b, providers(engine, len(b.Stages)), nil, log); err != nil {
			return err
		}
		defer r.fleet.close()
	}
	for _, dir := range []string{r.out, r.dump} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("infer: %w", err)
			}
		}
	}
	var failed []string
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.frameID = uint64(i + 1)
		if err := r.run(ctx, in, len(inputs) > 1); err != nil {
			log.Error("frame failed", "input", in.name, "err", err)
			msg := err.Error()
			if !strings.Contains(msg, in.name) {
				msg = in.name + ": " + msg
			}
			failed = append(failed, msg)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("infer: %d of %d inputs failed:\n  %s", len(failed), len(inputs), strings.Join(failed, "\n  "))
	}
	return nil
}

// inferRunner runs one input at a time and writes its outputs.
type inferRunner struct {
	bundle *bundle.Bundle
	exec   *anytime.Executor
	log    *slog.Logger
	out    string
	dump   string
	fleet  *fleet // nil unless publishing
	pose   *pose  // keypoints bundles only

	// per input
	frameID  uint64
	stem     string
	dumpDir  string
	frame    *image.RGBA
	labels   []uint8
	writeErr error
}

// summary is the JSON written per input.
type summary struct {
	Input     string               `json:"input"`
	Width     int                  `json:"width"`
	Height    int                  `json:"height"`
	Bundle    bundleRef            `json:"bundle"`
	Threshold float32              `json:"threshold"`
	Exits     []exitSummary        `json:"exits"`
	Halt      haltSummary          `json:"halt"`
	Classes   map[string]float64   `json:"classes,omitempty"`
	Keypoints []telemetry.Keypoint `json:"keypoints,omitempty"`
}

type bundleRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

type exitSummary struct {
	Exit         int          `json:"exit"`
	MS           float64      `json:"ms"`
	MJ           float64      `json:"mj"`
	EnergySource power.Source `json:"energy_source,omitempty"`
	Frozen       float64      `json:"frozen"`
	GMACs        float64      `json:"gmacs"`
	Provider     string       `json:"provider"`
	Ran          string       `json:"ran"`
}

type haltSummary struct {
	Exit   int            `json:"exit"`
	Reason anytime.Reason `json:"reason"`
}

func (r *inferRunner) run(ctx context.Context, in inferInput, many bool) error {
	r.stem = strings.TrimSuffix(filepath.Base(in.name), filepath.Ext(in.name))
	r.frame, r.writeErr = nil, nil
	r.dumpDir = r.dump
	if r.dump != "" && many {
		r.dumpDir = filepath.Join(r.dump, r.stem)
		if err := os.MkdirAll(r.dumpDir, 0o755); err != nil {
			return err
		}
	}
	width, height := r.bundle.Input.Width(), r.bundle.Input.Height()
	captured := time.Now()
	if in.tensor {
		x, err := npy.ReadFloat32(in.path, []int{1, 3, height, width})
		if err != nil {
			return fmt.Errorf("--tensor: %w", err)
		}
		copy(r.exec.Image(), x)
	} else {
		img, err := imaging.Load(in.path)
		if err != nil {
			return err
		}
		r.frame = img
		width, height = img.Rect.Dx(), img.Rect.Dy()
		imaging.Preprocess(r.exec.Image(), img, r.bundle.Input)
	}
	res, err := r.exec.Run(ctx)
	if err != nil {
		return err
	}
	if r.writeErr != nil {
		return r.writeErr
	}
	s := summary{
		Input: in.name, Width: width, Height: height,
		Bundle:    bundleRef{Name: r.bundle.Name, SHA256: r.bundle.SHA256},
		Threshold: r.exec.Threshold(),
		Halt:      haltSummary{Exit: len(res.Exits), Reason: res.Halt},
	}
	for _, e := range res.Exits {
		s.Exits = append(s.Exits, exitSummary{
			Exit: e.Exit, MS: float64(e.Stage) / float64(time.Millisecond),
			MJ: e.EnergyJ * 1000, EnergySource: e.EnergySource,
			Frozen: e.Frozen, GMACs: e.GMACs, Provider: e.Provider, Ran: e.Ran,
		})
	}
	if r.pose != nil {
		r.pose.decode(res.Merged, width, height)
		s.Keypoints = r.pose.message()
		if r.frame != nil && r.out != "" {
			if err := imaging.WritePNG(filepath.Join(r.out, r.stem+"_overlay.png"), r.pose.overlay(r.frame)); err != nil {
				return err
			}
		}
	}
	if r.bundle.Task == bundle.TaskSegmentation {
		s.Classes = imaging.ClassFractions(r.labels, r.bundle.Labels)
		if r.frame != nil && r.out != "" {
			h, w := r.bundle.OutputSize()
			lab := imaging.LabelImage(r.labels, h, w, width, height, imaging.Palette(r.bundle.Labels))
			if err := imaging.WritePNG(filepath.Join(r.out, r.stem+"_overlay.png"), imaging.Overlay(r.frame, lab, 0.5)); err != nil {
				return err
			}
		}
	}
	if r.fleet != nil {
		fr := source.Frame{ID: r.frameID, Source: in.name, Captured: captured}
		m := r.fleet.result(&fr, width, height, res.Exits, res.Halt, s.Classes)
		m.Keypoints = s.Keypoints
		r.fleet.publish(m)
		if r.labels != nil {
			r.fleet.publishLabels(&fr, r.labels)
		}
	}
	r.log.Info("frame done", "input", in.name, "exits", len(res.Exits), "halt", res.Halt,
		"gmacs", fmt.Sprintf("%.3f", res.Exits[len(res.Exits)-1].GMACs), "provider", res.Exits[0].Provider)
	if r.out == "" {
		return nil
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.out, r.stem+".json"), append(raw, '\n'), 0o644)
}

// onExit writes one exit's label PNG and dumps as soon as it exists.
func (r *inferRunner) onExit(e anytime.Exit, merged []float32, mask []uint8) {
	if r.writeErr != nil {
		return
	}
	h, w := r.bundle.OutputSize()
	c := r.bundle.Channels()
	if r.dumpDir != "" {
		if err := npy.WriteFloat32(filepath.Join(r.dumpDir, fmt.Sprintf("exit%d_logits.npy", e.Exit)), []int{1, c, h, w}, merged); err != nil {
			r.writeErr = err
			return
		}
		if e.Exit < len(r.bundle.Stages) {
			if err := npy.WriteUint8(filepath.Join(r.dumpDir, fmt.Sprintf("exit%d_mask.npy", e.Exit)), []int{h, w}, mask); err != nil {
				r.writeErr = err
				return
			}
		}
	}
	if r.bundle.Task != bundle.TaskSegmentation {
		return
	}
	if len(r.labels) != h*w {
		r.labels = make([]uint8, h*w)
	}
	imaging.Argmax(r.labels, merged)
	if r.out == "" {
		return
	}
	width, height := w, h
	if r.frame != nil {
		width, height = r.frame.Rect.Dx(), r.frame.Rect.Dy()
	}
	lab := imaging.LabelImage(r.labels, h, w, width, height, imaging.Palette(r.bundle.Labels))
	if err := imaging.WritePNG(filepath.Join(r.out, fmt.Sprintf("%s_exit%d.png", r.stem, e.Exit)), lab); err != nil {
		r.writeErr = err
	}
}
