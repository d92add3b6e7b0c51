package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"strings"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/telemetry"
)

// Publisher is what the sinks need of telemetry.Publisher.
type Publisher interface {
	Publish(ctx context.Context, m telemetry.Message) error
	PublishLabels(ctx context.Context, frame uint64, ts time.Time, png []byte, durable bool) error
}

// ResultsOptions configure Results.
type ResultsOptions struct {
	// Progressive also publishes each exit's result the moment it exists.
	Progressive bool
	// Limits returns the limits in force, for halt.deadline_ms; nil sends
	// the limits as none.
	Limits func() telemetry.Limits
	// Snapshot reports, once per request, that a snapshot was asked for
	// (Control.TakeSnapshot); nil never.
	Snapshot func() bool
	Log      *slog.Logger
}

// Results publishes over MQTT: one result per frame (and per exit when
// progressive), the label map of each segmentation frame on result/labels,
// and event/frame-failed for a frame that failed. After a snapshot
// request the next finished frame's label map is published durably (QoS 1
// through the spool, whatever result/labels' QoS) and event/snapshot names
// that frame.
type Results struct {
	pub Publisher
	o   ResultsOptions
}

// NewResults makes the MQTT output.
func NewResults(pub Publisher, o ResultsOptions) *Results {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Results{pub: pub, o: o}
}

func (r *Results) exit(v *view) error {
	if !r.o.Progressive {
		return nil
	}
	var classes map[string]float64
	var kps []telemetry.Keypoint
	if v.pose != nil {
		kps = v.decode(v.merged)
	} else {
		classes = imaging.ClassFractions(v.labels[len(v.exits)-1], v.bundle.Labels)
	}
	m := r.result(v, telemetry.HaltInProgress, classes)
	m.Progressive, m.Keypoints = true, kps
	r.publish(m)
	return nil
}

func (r *Results) frame(v *view) error {
	if v.err != nil {
		r.publish(&telemetry.Event{Kind: "frame-failed", Message: v.err.Error(),
			Data: map[string]string{"frame": fmt.Sprint(v.frame.ID), "source": v.frame.Source}})
		return nil
	}
	m := r.result(v, v.result.Halt, v.classes())
	m.Keypoints = v.keypoints
	r.publish(m)
	snap := r.o.Snapshot != nil && r.o.Snapshot()
	if labels := v.finalLabels(); labels != nil {
		var b bytes.Buffer
		if err := png.Encode(&b, imaging.LabelImage(labels, v.h, v.w, v.w, v.h, v.pal)); err != nil {
			return fmt.Errorf("encode label map: %w", err)
		}
		if err := r.pub.PublishLabels(context.Background(), v.frame.ID, v.frame.Captured, b.Bytes(), snap); err != nil && !errors.Is(err, telemetry.ErrQueueFull) {
			r.o.Log.Debug("labels", "err", err)
		}
	}
	if snap {
		topics := "result"
		if v.pose == nil {
			topics = "result, result/labels (durable)"
		}
		r.publish(&telemetry.Event{Kind: "snapshot", Message: "snapshot of frame " + fmt.Sprint(v.frame.ID) + " published on " + topics,
			Data: map[string]string{"frame": fmt.Sprint(v.frame.ID), "source": v.frame.Source}})
	}
	return nil
}

// result builds the result message of the frame's exits so far.
func (r *Results) result(v *view, halt anytime.Reason, classes map[string]float64) *telemetry.Result {
	width, height := v.size()
	m := &telemetry.Result{
		Frame:   telemetry.Frame{ID: v.frame.ID, Source: v.frame.Source, Width: width, Height: height},
		Bundle:  telemetry.Bundle{Name: v.bundle.Name, SHA256: v.bundle.SHA256},
		Halt:    telemetry.Halt{Exit: len(v.exits), Reason: halt},
		Exits:   append([]telemetry.Exit(nil), v.exits...),
		Classes: classes,
	}
	m.TS = v.frame.Captured
	if r.o.Limits != nil {
		m.Halt.DeadlineMS = r.o.Limits().DeadlineMS
	}
	for _, e := range v.exits {
		m.Energy.MJ += e.MJ
		if e.EnergySource != "" {
			m.Energy.Source = e.EnergySource
		}
	}
	if m.Energy.Source == "" {
		m.Energy.Source = power.SourceEstimate
	}
	return m
}

func (r *Results) publish(m telemetry.Message) {
	if err := r.pub.Publish(context.Background(), m); err != nil {
		r.o.Log.Warn("publish", "err", err) // counted by the publisher too
	}
}

// Announce reports the bundle and the providers of its stages in the
// retained status and publishes event/bundle-loaded.
func Announce(ctx context.Context, pub *telemetry.Publisher, b *bundle.Bundle, providers []string, log *slog.Logger) {
	ref := &telemetry.Bundle{Name: b.Name, SHA256: b.SHA256}
	if err := pub.SetStatus(ctx, ref, providers); err != nil && !errors.Is(err, telemetry.ErrQueueFull) {
		log.Warn("status", "err", err)
	}
	ev := &telemetry.Event{Kind: "bundle-loaded", Message: fmt.Sprintf("bundle %s loaded", b.Name),
		Data: map[string]string{"sha256": b.SHA256, "providers": strings.Join(providers, ",")}}
	if err := pub.Publish(ctx, ev); err != nil {
		log.Warn("publish", "err", err)
	}
}
