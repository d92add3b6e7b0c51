package main

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
	"github.com/anytime-edge/edge/sink"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
	"github.com/anytime-edge/edge/telemetry/broker"
)

// fleet publishes what the runtime does over MQTT: one result per frame
// (and per exit with --progressive), label maps, periodic telemetry and
// events. Publishing never blocks the frame loop: telemetry.Publisher
// spools and sends in the background.
type fleet struct {
	pub     *telemetry.Publisher
	broker  *broker.Broker      // the embedded broker; nil with --mqtt
	metrics *sink.MetricsServer // nil without --metrics
	bundle  *bundle.Bundle
	ctrl    *controller
	log     *slog.Logger
	labels  bool // publish result/labels
}

// openFleet starts the MQTT publisher (and the embedded broker when cfg
// names no broker URL) and announces the bundle and providers in status.
func openFleet(ctx context.Context, cfg telemetry.Config, b *bundle.Bundle, providers []string, ctrl *controller, log *slog.Logger) (*fleet, error) {
	var tc telemetry.Controller
	if ctrl != nil {
		tc = ctrl
	}
	f := &fleet{bundle: b, ctrl: ctrl, log: log, labels: b.Task == bundle.TaskSegmentation}
	var err error
	f.broker, cfg, err = telemetry.StartBroker(cfg, log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	if f.pub, err = telemetry.New(ctx, cfg, tc, log); err != nil {
		f.close()
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if f.metrics, err = sink.ServeMetrics(cfg.MetricsAddr, f.pub.Metrics(), log.With("component", "metrics")); err != nil {
			f.close()
			return nil, err
		}
	}
	pub := f.pub
	ref := &telemetry.Bundle{Name: b.Name, SHA256: b.SHA256}
	if err := pub.SetStatus(ctx, ref, providers); err != nil && !errors.Is(err, telemetry.ErrQueueFull) {
		log.Warn("status", "err", err)
	}
	f.event("bundle-loaded", fmt.Sprintf("bundle %s loaded", b.Name), map[string]string{"sha256": b.SHA256, "providers": strings.Join(providers, ",")})
	return f, nil
}

func (f *fleet) publish(m telemetry.Message) {
	if err := f.pub.Publish(context.Background(), m); err != nil {
		f.log.Warn("publish", "err", err) // counted by the publisher too
	}
}

func (f *fleet) event(kind, msg string, data map[string]string) {
	f.publish(&telemetry.Event{Kind: kind, Message: msg, Data: data})
}

// result builds the result message of a frame that stopped after exits.
func (f *fleet) result(fr *source.Frame, width, height int, exits []anytime.Exit, halt anytime.Reason, classes map[string]float64) *telemetry.Result {
	m := &telemetry.Result{
		Frame:  telemetry.Frame{ID: fr.ID, Source: fr.Source, Width: width, Height: height},
		Bundle: telemetry.Bundle{Name: f.bundle.Name, SHA256: f.bundle.SHA256},
		Halt:   telemetry.Halt{Exit: len(exits), Reason: halt},
	}
	m.TS = fr.Captured
	if f.ctrl != nil {
		m.Halt.DeadlineMS = f.ctrl.Limits().DeadlineMS
	}
	for _, e := range exits {
		m.Exits = append(m.Exits, telemetry.Exit{Exit: e.Exit, MS: ms(e.Stage), MJ: e.EnergyJ * 1000, Frozen: e.Frozen, GMACs: e.GMACs})
		m.Energy.MJ += e.EnergyJ * 1000
		if e.EnergySource != "" {
			m.Energy.Source = e.EnergySource
		}
	}
	if m.Energy.Source == "" {
		m.Energy.Source = power.SourceEstimate
	}
	m.Classes = classes
	return m
}

// publishLabels sends a frame's label map (h×w, the bundle's palette) as a
// paletted PNG on result/labels.
func (f *fleet) publishLabels(fr *source.Frame, labels []uint8) {
	h, w := f.bundle.OutputSize()
	var b bytes.Buffer
	if err := png.Encode(&b, imaging.LabelImage(labels, h, w, w, h, imaging.Palette(f.bundle.Labels))); err != nil {
		f.log.Warn("encode labels", "err", err)
		return
	}
	if err := f.pub.PublishLabels(context.Background(), fr.ID, fr.Captured, b.Bytes()); err != nil && !errors.Is(err, telemetry.ErrQueueFull) {
		f.log.Debug("labels", "err", err)
	}
}

// health publishes a telemetry message every period until ctx ends, and an
// event when thermal or power throttling starts or stops.
func (f *fleet) health(ctx context.Context, period time.Duration, rec *power.Recorder, stats func() (fps float64, drops uint64)) {
	t := time.NewTicker(period)
	defer t.Stop()
	throttled := false
	var lastEnergy float64
	var lastAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := &telemetry.Telemetry{TempsC: map[string]float64{}}
		m.FPS, m.FrameDrops = stats()
		if r, ok := rec.Latest(); ok {
			m.PowerW, m.PowerSource = r.TotalW.V, r.TotalW.Source
			for _, tz := range r.Temps {
				m.TempsC[tz.Zone] = tz.C
				m.TempSource = tz.Source
			}
			if r.EnergyJ.OK() {
				if !lastAt.IsZero() {
					m.EnergyMJ = (r.EnergyJ.V - lastEnergy) * 1000
				}
				lastEnergy, lastAt = r.EnergyJ.V, r.Time
			}
			if active := r.Throttle != nil && r.Throttle.Active; active != throttled {
				throttled = active
				state := "left"
				if active {
					state = "entered"
				}
				f.event("thermal-throttle", "throttling "+state, map[string]string{"reasons": strings.Join(r.Throttle.Reasons, ",")})
			}
			m.Throttled = throttled
		}
		f.publish(m)
	}
}

// close publishes the offline status, flushes the spool, and stops the
// metrics server and the embedded broker.
func (f *fleet) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f.pub != nil {
		if err := f.pub.Close(ctx); err != nil {
			f.log.Warn("telemetry close", "err", err)
		}
	}
	if f.metrics != nil {
		if err := f.metrics.Close(ctx); err != nil {
			f.log.Warn("metrics close", "err", err)
		}
	}
	if f.broker != nil {
		if err := f.broker.Close(); err != nil {
			f.log.Warn("broker close", "err", err)
		}
	}
}
