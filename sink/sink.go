package sink

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"strings"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/masking"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

// Output is one destination of results: Results (MQTT), Files, Live. Its
// methods are called by a Set on the pipeline's goroutine.
type Output interface {
	// exit is called with each exit of the frame in flight, as soon as
	// it exists.
	exit(v *view) error
	// frame is called with each frame's outcome, failed ones included
	// (v.err set).
	frame(v *view) error
}

// Set hands each exit and each frame to its outputs, after computing once
// what several of them need (exit records, label maps, masks, keypoints).
// It implements pipeline.Sink and pipeline.ExitSink; its methods run on
// the pipeline's goroutine.
type Set struct {
	v        view
	outs     []Output
	log      *slog.Logger
	o        Options
	failures []string
}

var (
	_ pipeline.Sink     = (*Set)(nil)
	_ pipeline.ExitSink = (*Set)(nil)
)

// Options configure a Set.
type Options struct {
	Log *slog.Logger
	// LogFrames logs one line per finished frame at Info (edge infer);
	// otherwise at Debug.
	LogFrames bool
	// KeepFailures keeps every failure for Failures (a finite run such as
	// edge infer); a daemon leaves it off so that nothing grows.
	KeepFailures bool
}

// New makes a Set for bundle b's results.
func New(b *bundle.Bundle, o Options, outs ...Output) *Set {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h, w := b.OutputSize()
	s := &Set{outs: outs, log: o.Log, o: o}
	s.v = view{bundle: b, h: h, w: w, pal: imaging.Palette(b.Labels)}
	if b.Task == bundle.TaskKeypoints {
		s.v.pose = newPose(b)
	}
	for range b.Stages {
		s.v.labels = append(s.v.labels, make([]uint8, h*w))
		s.v.peaks = append(s.v.peaks, make([]float32, h*w))
		s.v.masks = append(s.v.masks, make([]uint8, h*w))
	}
	return s
}

// Failures lists the frames that failed or whose outputs could not be
// written, as "source: reason", in frame order; empty unless
// Options.KeepFailures.
func (s *Set) Failures() []string { return s.failures }

// Exit implements pipeline.ExitSink.
func (s *Set) Exit(f *source.Frame, e anytime.Exit, merged []float32, mask []uint8) {
	v := &s.v
	if e.Exit == 1 || v.frame != f {
		v.start(f)
	}
	k := e.Exit - 1
	if k < 0 || k >= len(v.masks) {
		return
	}
	v.exits = append(v.exits, telemetry.ExitOf(e))
	copy(v.masks[k], mask)
	if v.pose != nil {
		masking.Confidence(v.peaks[k], nil, merged, masking.HeatmapPeak)
	} else {
		imaging.Argmax(v.labels[k], merged)
	}
	v.merged = merged
	for _, o := range s.outs {
		if err := o.exit(v); err != nil {
			v.errs = append(v.errs, err)
		}
	}
	v.merged = nil
}

// Frame implements pipeline.Sink.
func (s *Set) Frame(o *pipeline.Output) {
	v := &s.v
	if v.frame != &o.Frame {
		v.start(&o.Frame) // failed before its first exit
	}
	v.result, v.err = &o.Result, o.Err
	if v.err == nil && v.pose != nil && len(v.exits) > 0 {
		v.keypoints = v.decode(o.Result.Merged)
	}
	for _, out := range s.outs {
		if err := out.frame(v); err != nil {
			v.errs = append(v.errs, err)
		}
	}
	errs := v.errs
	if v.err != nil {
		errs = append([]error{v.err}, errs...)
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		msg := strings.Join(msgs, "; ")
		if !strings.Contains(msg, o.Frame.Source) {
			msg = o.Frame.Source + ": " + msg
		}
		if s.o.KeepFailures {
			s.failures = append(s.failures, msg)
		}
		if v.err == nil { // the pipeline logged the frame's own failure
			s.log.Error("frame outputs failed", "frame", o.Frame.ID, "source", o.Frame.Source, "err", msg)
		}
	} else if n := len(v.exits); n > 0 {
		level := slog.LevelDebug
		if s.o.LogFrames {
			level = slog.LevelInfo
		}
		last := v.exits[n-1]
		s.log.Log(context.Background(), level, "frame done", "input", o.Frame.Source, "exits", n, "halt", o.Result.Halt,
			"gmacs", fmt.Sprintf("%.3f", last.GMACs), "provider", v.exits[0].Provider)
	}
	v.start(nil)
}

// view is what the outputs see of the frame in flight. Slices are reused
// from frame to frame; merged and result are valid only during a call.
type view struct {
	bundle *bundle.Bundle
	pose   *pose // keypoints bundles only
	h, w   int   // output size
	pal    color.Palette

	frame     *source.Frame
	exits     []telemetry.Exit // this frame's exits so far
	labels    [][]uint8        // per exit (segmentation): argmax of its merged output
	peaks     [][]float32      // per exit (keypoints): peak over joints
	masks     [][]uint8        // per exit: the mask it leaves (1 = the next stage computes)
	merged    []float32        // during exit: the merged output after it
	keypoints []telemetry.Keypoint
	result    *anytime.Result // during frame
	err       error           // during frame: why the frame failed
	errs      []error         // outputs' errors for this frame
	overlay   *image.RGBA     // made once per frame, when wanted
}

// start forgets the previous frame.
func (v *view) start(f *source.Frame) {
	v.frame, v.exits, v.keypoints = f, v.exits[:0], nil
	v.result, v.err, v.errs, v.overlay = nil, nil, v.errs[:0], nil
}

// size is the frame's width and height: its image's, or the bundle's input
// for a tensor input.
func (v *view) size() (int, int) {
	if v.frame != nil && v.frame.Image != nil {
		return v.frame.Image.Rect.Dx(), v.frame.Image.Rect.Dy()
	}
	return v.bundle.Input.Width(), v.bundle.Input.Height()
}

// decode finds the keypoints in merged heatmaps, in frame coordinates.
func (v *view) decode(merged []float32) []telemetry.Keypoint {
	width, height := v.size()
	v.pose.decode(merged, width, height)
	return v.pose.message()
}

// finalLabels is the label map of the frame's last exit (segmentation).
func (v *view) finalLabels() []uint8 {
	if v.pose != nil || len(v.exits) == 0 {
		return nil
	}
	return v.labels[len(v.exits)-1]
}

// classes is the fraction of pixels per class after the last exit
// (segmentation), nil for keypoints bundles.
func (v *view) classes() map[string]float64 {
	if l := v.finalLabels(); l != nil {
		return imaging.ClassFractions(l, v.bundle.Labels)
	}
	return nil
}

// labelImage is exit k's label map (1-based) at the frame's size.
func (v *view) labelImage(k int) *image.Paletted {
	width, height := v.size()
	return imaging.LabelImage(v.labels[k-1], v.h, v.w, width, height, v.pal)
}

// overlayImage is the frame with its result drawn over it, made once per
// frame; nil for a frame without an image (a tensor input).
func (v *view) overlayImage() *image.RGBA {
	if v.overlay != nil || v.frame == nil || v.frame.Image == nil || len(v.exits) == 0 {
		return v.overlay
	}
	if v.pose != nil {
		v.overlay = v.pose.overlay(v.frame.Image)
	} else {
		v.overlay = imaging.Overlay(v.frame.Image, v.labelImage(len(v.exits)), 0.5)
	}
	return v.overlay
}
