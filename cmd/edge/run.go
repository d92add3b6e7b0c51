package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/internal/sdnotify"
	"github.com/anytime-edge/edge/liveview"
	"github.com/anytime-edge/edge/pipeline"
	"github.com/anytime-edge/edge/sink"
	"github.com/anytime-edge/edge/source"
	"github.com/anytime-edge/edge/telemetry"
)

// runDaemon is `edge run`: it runs until the source ends (finite sources
// without --loop) or ctx is cancelled.
func runDaemon(ctx context.Context, cfg Config, log *slog.Logger, _ io.Writer) error {
	rc := cfg.Run
	watch := &sourceWatch{log: log}
	src, err := source.Open(ctx, rc.Source, source.Options{Loop: rc.Loop, FPS: rc.FPS, Width: rc.Width, Height: rc.Height, OnEvent: watch.event})
	if err != nil {
		return err
	}
	defer func() {
		if src != nil { // until the pipeline owns it
			src.Close()
		}
	}()
	fr, err := openFrames(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer fr.Close()
	b, x, pw, engine := fr.bundle, fr.exec, fr.power, fr.engine
	ctrl := sink.NewControl(pw.Policy, x, len(b.Stages))
	fl, err := sink.OpenFleet(ctx, *cfg.Telemetry, ctrl, log)
	if err != nil {
		return err
	}
	defer fl.Close()
	watch.pub = fl.Pub
	pw.OnThermalUnknown = func(why string) { thermalEvent(fl.Pub, why, log) }
	sink.Announce(ctx, fl.Pub, b, providers(engine, len(b.Stages)), log)
	outs := []sink.Output{sink.NewResults(fl.Pub, sink.ResultsOptions{
		Progressive: rc.Progressive, Limits: ctrl.Limits, Snapshot: ctrl.TakeSnapshot, Log: log,
	})}
	if rc.Out != "" {
		files, err := sink.NewFiles(sink.FilesOptions{Dir: rc.Out})
		if err != nil {
			return err
		}
		outs = append(outs, files)
	}
	if rc.HTTP != "" {
		live, err := liveview.Listen(liveview.Options{
			Addr: rc.HTTP, Commands: sink.LiveCommands{C: fl.Pub}, Limits: func() any { return ctrl.Limits() },
			Log: log.With("component", "liveview"),
		})
		if err != nil {
			return err
		}
		defer live.Close(context.Background())
		outs = append(outs, sink.NewLive(live, pw.Recorder, func() pipeline.Stats { return fr.pipe.Stats() }))
		log.Info("live view", "url", "http://"+live.Addr()+"/")
	}
	p := fr.newPipeline(src, []pipeline.Sink{sink.New(b, sink.Options{Log: log}, outs...)}, pipeline.Options{DropWhenBusy: !rc.Once}, log)
	src = nil

	healthCtx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	start := time.Now()
	go sink.Health(healthCtx, fl.Pub, 5*time.Second, pw.Recorder, func() (float64, uint64) {
		st := p.Stats()
		return float64(st.Processed) / time.Since(start).Seconds(), st.Dropped
	}, log)
	log.Info("running", "source", source.Redact(rc.Source), "bundle", b.Name, "provider", engine.Provider(0), "power", pw.Choice.Kind)
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		log.Warn("systemd notify", "err", err)
	}
	defer sdnotify.Notify("STOPPING=1")
	if every := sdnotify.WatchdogInterval(); every > 0 {
		go keepAlive(ctx, p, watch, every, log)
	}
	err = p.Run(ctx, x, pipeline.Preprocess(b.Input))
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

// keepAlive pings systemd's watchdog every half period while the pipeline is
// healthy, and withholds the ping while it is wedged (see wedged), so that
// systemd restarts us.
func keepAlive(ctx context.Context, p *pipeline.Pipeline, w *sourceWatch, period time.Duration, log *slog.Logger) {
	t := time.NewTicker(period / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if why := wedged(time.Now(), p.InFlightSince(), p.SourceWaitingSince(), w.lastRetry(), period); why != "" {
			log.Error("pipeline wedged; withholding the watchdog keep-alive", "why", why)
			continue
		}
		sdnotify.Notify("WATCHDOG=1")
	}
}

// wedged says why the pipeline is wedged at now, or "" when it is healthy:
// a frame in the executor for longer than period, or the capture waiting on
// a source for longer than period without the source retrying (a reopen
// attempt) within it. A network stream being reopened is not wedged; a
// camera, file or stream that stays silent is.
func wedged(now, inFlight, waiting, retried time.Time, period time.Duration) string {
	switch {
	case !inFlight.IsZero() && now.Sub(inFlight) > period:
		return fmt.Sprintf("a frame has been in the executor for %v", now.Sub(inFlight).Round(time.Millisecond))
	case !waiting.IsZero() && now.Sub(waiting) > period && (retried.IsZero() || now.Sub(retried) > period):
		return fmt.Sprintf("no frame from the source for %v", now.Sub(waiting).Round(time.Millisecond))
	}
	return ""
}

// sourceWatch turns the source's health events into log lines and fleet
// events (event/source-stalled, …), and remembers when the source last
// tried to reopen (for the watchdog).
type sourceWatch struct {
	log   *slog.Logger
	pub   *telemetry.Publisher // set before the pipeline runs, so before any event
	retry atomic.Int64
}

// event implements source.Options.OnEvent; it runs on the capture goroutine.
func (w *sourceWatch) event(ev source.Event) {
	attrs := []any{"source", ev.Source, "silent", ev.Silent.Round(time.Millisecond).String()}
	data := map[string]string{"source": ev.Source, "silent_ms": fmt.Sprint(ev.Silent.Milliseconds())}
	if ev.Attempt > 0 {
		attrs = append(attrs, "attempt", ev.Attempt)
		data["attempt"] = fmt.Sprint(ev.Attempt)
	}
	msg := "source " + string(ev.Kind)
	if ev.Err != nil {
		attrs = append(attrs, "err", ev.Err)
		msg += ": " + ev.Err.Error()
	}
	switch ev.Kind {
	case source.EventReopened, source.EventResumed:
		w.log.Info(msg, attrs...)
	default:
		w.log.Warn(msg, attrs...)
	}
	if ev.Kind == source.EventReopened || ev.Kind == source.EventReopenFailed {
		w.retry.Store(time.Now().UnixNano())
	}
	if w.pub != nil {
		if err := w.pub.Publish(context.Background(), &telemetry.Event{Kind: "source-" + string(ev.Kind), Message: msg, Data: data}); err != nil {
			w.log.Warn("publish", "err", err)
		}
	}
}

// lastRetry is when the source last attempted a reopen; zero if never.
func (w *sourceWatch) lastRetry() time.Time {
	if ns := w.retry.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// thermalEvent publishes event/thermal-unknown when the policy starts
// failing safe for want of a temperature (why), and event/thermal-known
// when it stops (why empty).
func thermalEvent(pub *telemetry.Publisher, why string, log *slog.Logger) {
	ev := &telemetry.Event{Kind: "thermal-known", Message: "temperature known again: thermal limits back in force"}
	if why != "" {
		ev = &telemetry.Event{Kind: "thermal-unknown", Message: "no fresh temperature under thermal limits: frames halt at exit 1",
			Data: map[string]string{"why": why}}
	}
	if err := pub.Publish(context.Background(), ev); err != nil {
		log.Warn("publish", "err", err)
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
