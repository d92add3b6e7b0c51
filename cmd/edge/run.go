package main

import (
	"context"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/internal/sdnotify"
	"github.com/anytime-edge/edge/liveview"
	"github.com/anytime-edge/edge/masking"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/power"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "the daemon: frames from a source through the anytime pipeline to MQTT, files and the live view",
		ArgsUsage: "[SOURCE-URI]",
		Flags:     flags(engineFlags(), limitFlags(), powerFlags(), []cli.Flag{powerIntervalFlag()}, runFlags(), telemetryFlags()),
		Action:    action(runConfig, runDaemon),
	}
}

// runDaemon is `edge run`: it runs until the source ends (finite sources
// without --loop) or ctx is cancelled.
func runDaemon(ctx context.Context, cfg Config, _ io.Writer) error {
	log := newLogger(cfg.Log)
	rc := cfg.Run
	src, err := source.Open(ctx, rc.Source, source.Options{Loop: rc.Loop, FPS: rc.FPS, Width: rc.Width, Height: rc.Height})
	if err != nil {
		return err
	}
	b, engine, err := openBundle(cfg.Engine, cfg.Engine.Bundle, log)
	if err != nil {
		src.Close()
		return err
	}
	defer engine.Close()
	if err := cfg.checkBundle(b); err != nil {
		src.Close()
		return err
	}
	pw, err := startPower(ctx, cfg.Power, stageSeeds(b), power.DefaultDeviceSeed(engine.Provider(0)), log)
	if err != nil {
		src.Close()
		return err
	}
	defer pw.Stop()

	sink := &runSink{bundle: b, power: pw, log: log, out: rc.Out, progressive: rc.Progressive}
	if b.Task == bundle.TaskKeypoints {
		sink.pose = newPose(b)
	}
	p := pipeline.New(src, []pipeline.Sink{sink}, pipeline.Options{DropWhenBusy: !rc.Once}, log.With("component", "pipeline"))
	sink.stats = p.Stats
	x, err := anytime.New(b, engine, anytime.Config{
		Policy: pw.Policy, Meter: pw.Recorder, HardDeadline: cfg.Power.Limits.Deadline, OnExit: p.OnExit,
	})
	if err != nil {
		src.Close()
		return err
	}
	if err := tune(ctx, x, b, cfg.Engine, log); err != nil {
		src.Close()
		return err
	}
	ctrl := &controller{policy: pw.Policy, exec: x, stages: len(b.Stages)}
	sink.ctrl = ctrl
	fl, err := openFleet(ctx, *cfg.Telemetry, b, providers(engine, len(b.Stages)), ctrl, log)
	if err != nil {
		src.Close()
		return err
	}
	defer fl.close()
	sink.fleet = fl
	if fl.broker != nil {
		host, port, _ := net.SplitHostPort(fl.broker.Addr())
		log.Info("embedded broker", "addr", fl.broker.Addr(), "watch", fmt.Sprintf("mosquitto_sub -h %s -p %s -t '%s#' -v", host, port, fl.pub.Topics().Base()))
	}
	if fl.metrics != nil {
		log.Info("metrics", "url", "http://"+fl.metrics.Addr()+"/metrics")
	}
	healthCtx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	start := time.Now()
	go fl.health(healthCtx, 5*time.Second, pw.Recorder, func() (float64, uint64) {
		st := p.Stats()
		return float64(st.Processed) / time.Since(start).Seconds(), st.Dropped
	})
	if sink.out != "" {
		if err := os.MkdirAll(sink.out, 0o755); err != nil {
			src.Close()
			return fmt.Errorf("--out: %w", err)
		}
	}
	if rc.HTTP != "" {
		live, err := liveview.Listen(liveview.Options{
			Addr: rc.HTTP, Commands: webCommands{ctrl}, Limits: func() any { return ctrl.Limits() },
			Log: log.With("component", "liveview"),
		})
		if err != nil {
			src.Close()
			return err
		}
		defer live.Close(context.Background())
		sink.live = live
		log.Info("live view", "url", "http://"+live.Addr()+"/")
	}
	log.Info("running", "source", rc.Source, "bundle", b.Name, "provider", engine.Provider(0), "power", pw.Choice.Kind)
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		log.Warn("systemd notify", "err", err)
	}
	defer sdnotify.Notify("STOPPING=1")
	if every := sdnotify.WatchdogInterval(); every > 0 {
		go keepAlive(ctx, p, every, log)
	}
	err = p.Run(ctx, x, func(dst []float32, img *image.RGBA) { imaging.Preprocess(dst, img, b.Input) })
	st := p.Stats()
	log.Info("stopped", "frames", st.Processed, "failed", st.Failed, "dropped", st.Dropped,
		"fps", fmt.Sprintf("%.2f", float64(st.Processed)/time.Since(start).Seconds()))
	if err != nil {
		return err
	}
	if rc.Once && st.Failed > 0 {
		return fmt.Errorf("run: %d of %d frames failed (see the log)", st.Failed, st.Failed+st.Processed)
	}
	return nil
}

// runSink turns each frame's outcome into what the daemon's outputs need:
// label maps, files, the live view.
type runSink struct {
	bundle      *bundle.Bundle
	power       *powerRuntime
	ctrl        *controller
	fleet       *fleet
	live        *liveview.Server
	stats       func() pipeline.Stats
	log         *slog.Logger
	out         string
	progressive bool

	labels     []uint8
	exitsSoFar []anytime.Exit // this frame's exits, for progressive results
	exitLabels [][]uint8      // per exit, this frame (segmentation)
	exitPeaks  [][]float32    // per exit, this frame (keypoints: peak over joints)
	pose       *pose          // keypoints bundles only
	exitMasks  [][]uint8      // mask after each exit (fed to the next stage)
	lastLive   time.Time
}

// Exit implements pipeline.ExitSink: it keeps each exit's labels and mask
// for the live view's thumbnails.
// With --progressive it also publishes the exit's result at once.
func (s *runSink) Exit(f *source.Frame, e anytime.Exit, merged []float32, mask []uint8) {
	if e.Exit == 1 {
		s.exitsSoFar = s.exitsSoFar[:0]
	}
	s.exitsSoFar = append(s.exitsSoFar, e)
	h, w := s.bundle.OutputSize()
	for len(s.exitMasks) < len(s.bundle.Stages) {
		s.exitLabels = append(s.exitLabels, make([]uint8, h*w))
		s.exitPeaks = append(s.exitPeaks, make([]float32, h*w))
		s.exitMasks = append(s.exitMasks, make([]uint8, h*w))
	}
	copy(s.exitMasks[e.Exit-1], mask)
	if f.Image == nil {
		return
	}
	width, height := f.Image.Rect.Dx(), f.Image.Rect.Dy()
	var m *telemetry.Result
	if s.pose != nil {
		masking.Confidence(s.exitPeaks[e.Exit-1], nil, merged, masking.HeatmapPeak)
		if s.progressive && s.fleet != nil {
			s.pose.decode(merged, width, height)
			m = s.fleet.result(f, width, height, s.exitsSoFar, telemetry.HaltInProgress, nil)
			m.Keypoints = s.pose.message()
		}
	} else {
		labels := s.exitLabels[e.Exit-1]
		imaging.Argmax(labels, merged)
		if s.progressive && s.fleet != nil {
			m = s.fleet.result(f, width, height, s.exitsSoFar, telemetry.HaltInProgress, imaging.ClassFractions(labels, s.bundle.Labels))
		}
	}
	if m != nil {
		m.Progressive = true
		s.fleet.publish(m)
	}
}

// Frame implements pipeline.Sink.
func (s *runSink) Frame(o *pipeline.Output) {
	var energyMJ float64
	var energySrc power.Source
	for _, e := range o.Result.Exits {
		energyMJ += e.EnergyJ * 1000
		energySrc = e.EnergySource
	}
	s.point(o, energyMJ)
	if o.Err != nil || o.Frame.Image == nil {
		if o.Err != nil && s.fleet != nil {
			s.fleet.event("frame-failed", o.Err.Error(), map[string]string{"frame": fmt.Sprint(o.Frame.ID), "source": o.Frame.Source})
		}
		s.publishLive(o, nil, energyMJ, energySrc)
		return
	}
	width, height := o.Frame.Image.Rect.Dx(), o.Frame.Image.Rect.Dy()
	var render func() *image.RGBA // the overlay, made only when wanted
	if s.pose != nil {
		s.pose.decode(o.Result.Merged, width, height)
		if s.fleet != nil {
			m := s.fleet.result(&o.Frame, width, height, o.Result.Exits, o.Result.Halt, nil)
			m.Keypoints = s.pose.message()
			s.fleet.publish(m)
		}
		render = func() *image.RGBA { return s.pose.overlay(o.Frame.Image) }
	} else {
		h, w := s.bundle.OutputSize()
		if len(s.labels) != h*w {
			s.labels = make([]uint8, h*w)
		}
		imaging.Argmax(s.labels, o.Result.Merged)
		if s.fleet != nil {
			s.fleet.publish(s.fleet.result(&o.Frame, width, height, o.Result.Exits, o.Result.Halt, imaging.ClassFractions(s.labels, s.bundle.Labels)))
			s.fleet.publishLabels(&o.Frame, s.labels)
		}
		render = func() *image.RGBA {
			lab := imaging.LabelImage(s.labels, h, w, width, height, imaging.Palette(s.bundle.Labels))
			return imaging.Overlay(o.Frame.Image, lab, 0.5)
		}
	}
	liveDue := s.live != nil && time.Since(s.lastLive) >= 200*time.Millisecond
	if s.out == "" && !liveDue {
		return
	}
	overlay := render()
	if s.out != "" {
		name := fmt.Sprintf("frame%06d", o.Frame.ID)
		if err := imaging.WritePNG(filepath.Join(s.out, name+"_overlay.png"), overlay); err != nil {
			s.log.Warn("write frame", "err", err)
		}
	}
	if liveDue {
		s.publishLive(o, overlay, energyMJ, energySrc)
	}
}

// point adds the frame to the live view's charts.
func (s *runSink) point(o *pipeline.Output, energyMJ float64) {
	if s.live == nil {
		return
	}
	pt := liveview.Point{T: time.Now(), Exit: len(o.Result.Exits)}
	if o.Err == nil {
		pt.EnergyMJ = &energyMJ
	}
	if r, ok := s.power.Recorder.Latest(); ok {
		if r.TotalW.OK() {
			w := r.TotalW.V
			pt.PowerW = &w
		}
		if c, _, ok := r.HottestC(); ok {
			pt.TempC = &c
		}
	}
	s.live.Point(pt)
}

func (s *runSink) publishLive(o *pipeline.Output, overlay image.Image, energyMJ float64, src power.Source) {
	if s.live == nil {
		return
	}
	s.lastLive = time.Now()
	f := liveview.Frame{
		ID: o.Frame.ID, Source: o.Frame.Source, Captured: o.Frame.Captured,
		Halt: string(o.Result.Halt), HaltExit: len(o.Result.Exits), EnergyMJ: energyMJ, EnergySource: string(src),
		Overlay: overlay,
	}
	if o.Frame.Image != nil {
		f.Width, f.Height = o.Frame.Image.Rect.Dx(), o.Frame.Image.Rect.Dy()
	}
	if o.Err != nil {
		f.Error = o.Err.Error()
	}
	h, w := s.bundle.OutputSize()
	pal := imaging.Palette(s.bundle.Labels)
	for i, e := range o.Result.Exits {
		f.Exits = append(f.Exits, liveview.Exit{Exit: e.Exit, MS: ms(e.Stage), MJ: e.EnergyJ * 1000, Frozen: e.Frozen, GMACs: e.GMACs})
		if i < len(s.exitMasks) {
			var computed []uint8
			if i > 0 {
				computed = s.exitMasks[i-1]
			}
			if s.pose != nil {
				f.Thumbs = append(f.Thumbs, imaging.HeatThumbnail(s.exitPeaks[i], computed, h, w))
			} else {
				f.Thumbs = append(f.Thumbs, imaging.ExitThumbnail(s.exitLabels[i], computed, h, w, pal))
			}
		}
	}
	st := s.stats()
	s.live.Publish(f, liveview.Counters{Processed: st.Processed, Failed: st.Failed, Dropped: st.Dropped, Goroutines: runtime.NumGoroutine()})
}

// keepAlive pings systemd's watchdog every half period while the pipeline is
// healthy: idle (waiting for frames) or inside a frame for less than the
// period. A stage stuck longer stops the pings and systemd restarts us.
func keepAlive(ctx context.Context, p *pipeline.Pipeline, period time.Duration, log *slog.Logger) {
	t := time.NewTicker(period / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if since := p.InFlightSince(); !since.IsZero() && time.Since(since) > period {
			log.Error("frame stuck; withholding the watchdog keep-alive", "in_flight_for", time.Since(since))
			continue
		}
		sdnotify.Notify("WATCHDOG=1")
	}
}

// providers lists the execution provider of each stage.
func providers(e interface{ Provider(int) string }, stages int) []string {
	out := make([]string, stages)
	for i := range out {
		out[i] = e.Provider(i)
	}
	return out
}
