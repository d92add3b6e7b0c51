package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/bundle"
	"github.com/anytime-edge/edge/imaging"
	"github.com/anytime-edge/edge/source"
)

// Executor is what the pipeline needs of anytime.Executor.
type Executor interface {
	Image() []float32
	Run(ctx context.Context) (anytime.Result, error)
}

// Output is one frame's outcome as the sinks see it.
type Output struct {
	Frame source.Frame
	// Result is the executor's result; its buffers are valid only during
	// the sink call.
	Result anytime.Result
	// Err is set when the frame failed (unreadable image, engine error).
	Err error
}

// Sink receives every frame's outcome, in frame order, on the pipeline's
// goroutine: it must return quickly (enqueue, not publish).
type Sink interface {
	Frame(o *Output)
}

// ExitSink also receives each exit of the frame in flight as soon as it
// exists (progressive results).
type ExitSink interface {
	Exit(f *source.Frame, e anytime.Exit, merged []float32, mask []uint8)
}

// Options are how a pipeline treats its source.
type Options struct {
	// DropWhenBusy replaces a pending frame with a newer one when the
	// executor is still busy (live sources); otherwise capture waits
	// (files, --once).
	DropWhenBusy bool
}

// Stats counts what happened to frames.
type Stats struct {
	Captured, Processed, Failed, Dropped uint64
}

// Pipeline runs one source through one executor.
type Pipeline struct {
	src     source.Source
	sinks   []Sink
	opts    Options
	log     *slog.Logger
	current *source.Frame

	captured, processed, failed, dropped atomic.Uint64
	inFlight                             atomic.Int64 // start of the frame in flight (Unix ns), 0 when idle
	waiting                              atomic.Int64 // when capture entered the source's Next (Unix ns), 0 outside it
}

// New makes a pipeline; it takes ownership of src and closes it when Run
// returns.
func New(src source.Source, sinks []Sink, opts Options, log *slog.Logger) *Pipeline {
	return &Pipeline{src: src, sinks: sinks, opts: opts, log: log}
}

// Stats returns the counters; safe from any goroutine.
func (p *Pipeline) Stats() Stats {
	return Stats{p.captured.Load(), p.processed.Load(), p.failed.Load(), p.dropped.Load()}
}

// InFlightSince is when the frame now in the executor started, or the zero
// time when none is; a watchdog uses it to tell a stuck stage from an idle
// source. Safe from any goroutine.
func (p *Pipeline) InFlightSince() time.Time {
	if ns := p.inFlight.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SourceWaitingSince is when the capture goroutine started waiting in the
// source's Next for the frame it is still waiting for, or the zero time
// when it is not waiting on the source; a watchdog uses it to tell a silent
// source from a busy executor. Safe from any goroutine.
func (p *Pipeline) SourceWaitingSince() time.Time {
	if ns := p.waiting.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// OnExit is the executor's exit callback (anytime.Config.OnExit): it hands
// each exit of the frame in flight to the sinks that want them.
func (p *Pipeline) OnExit(e anytime.Exit, merged []float32, mask []uint8) {
	if p.current == nil {
		return
	}
	for _, s := range p.sinks {
		if es, ok := s.(ExitSink); ok {
			es.Exit(p.current, e, merged, mask)
		}
	}
}

// capture is what the capture goroutine hands over: a frame or a frame error.
type capture struct {
	frame source.Frame
	err   error
}

// Prepare fills the executor's input tensor dst from a frame; an error
// fails the frame (the sinks see it with Err set).
type Prepare func(dst []float32, f *source.Frame) error

// Preprocess is the Prepare of frames with an image: resized and
// normalised for the bundle's input.
func Preprocess(in bundle.Input) Prepare {
	return func(dst []float32, f *source.Frame) error {
		if f.Image == nil {
			return errors.New("frame has no image")
		}
		imaging.Preprocess(dst, f.Image, in)
		return nil
	}
}

// Run processes frames until the source ends (nil), ctx ends (nil after the
// frame in flight) or the source fails (its error). When ctx ends the source
// is closed at once, so a capture blocked in a silent source's Next does
// not hold up the shutdown.
func (p *Pipeline) Run(ctx context.Context, x Executor, prepare Prepare) error {
	defer p.src.Close()
	stopClosing := context.AfterFunc(ctx, func() { p.src.Close() })
	defer stopClosing()
	pending := make(chan capture, 1)
	var fatal error
	go func() {
		defer close(pending)
		for {
			p.waiting.Store(time.Now().UnixNano())
			f, err := p.src.Next(ctx)
			p.waiting.Store(0)
			var fe *source.FrameError
			switch {
			case err == nil:
				p.captured.Add(1)
			case errors.As(err, &fe):
				f = source.Frame{ID: fe.ID, Source: fe.Source}
			case errors.Is(err, io.EOF), ctx.Err() != nil:
				return
			default:
				fatal = err
				return
			}
			p.hand(ctx, pending, capture{f, err})
		}
	}()
	for c := range pending {
		p.process(ctx, x, prepare, c)
		if ctx.Err() != nil {
			break
		}
	}
	for c := range pending { // drain what capture still hands over
		if c.err == nil {
			p.dropped.Add(1)
		}
	}
	return fatal
}

// hand passes c to the processing loop, replacing a pending frame when the
// pipeline drops rather than waits.
func (p *Pipeline) hand(ctx context.Context, pending chan capture, c capture) {
	if !p.opts.DropWhenBusy {
		select {
		case pending <- c:
		case <-ctx.Done():
		}
		return
	}
	select {
	case pending <- c:
		return
	default:
	}
	select {
	case old := <-pending:
		if old.err == nil {
			p.dropped.Add(1)
		}
	default:
	}
	pending <- c // only this goroutine sends, and the slot is free
}

func (p *Pipeline) process(ctx context.Context, x Executor, prepare Prepare, c capture) {
	out := Output{Frame: c.frame, Err: c.err}
	if out.Err == nil {
		out.Err = prepare(x.Image(), &out.Frame)
	}
	if out.Err == nil {
		p.current = &out.Frame
		p.inFlight.Store(time.Now().UnixNano())
		// The frame in flight is finished even when shutdown begins.
		out.Result, out.Err = x.Run(context.WithoutCancel(ctx))
		p.inFlight.Store(0)
		p.current = nil
	}
	if out.Err != nil {
		p.failed.Add(1)
		p.log.Warn("frame failed", "frame", out.Frame.ID, "source", out.Frame.Source, "err", out.Err)
	} else {
		p.processed.Add(1)
	}
	for _, s := range p.sinks {
		s.Frame(&out)
	}
}
