package pipeline

import (
	"context"
	"errors"
	"image"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anytime-edge/edge/anytime"
	"github.com/anytime-edge/edge/source"
)

// fakeSource yields n frames (IDs 1..n), optionally one bad one, then EOF.
type fakeSource struct {
	n, bad  int
	next    int
	gate    chan struct{} // when set, each frame waits for a token
	closed  atomic.Bool
	failErr error
}

func (s *fakeSource) Next(ctx context.Context) (source.Frame, error) {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return source.Frame{}, ctx.Err()
		}
	}
	if s.next == s.n {
		if s.failErr != nil {
			return source.Frame{}, s.failErr
		}
		return source.Frame{}, io.EOF
	}
	s.next++
	if s.next == s.bad {
		return source.Frame{}, &source.FrameError{ID: uint64(s.next), Source: "bad.png", Err: errors.New("corrupt")}
	}
	return source.Frame{ID: uint64(s.next), Source: "fake", Image: image.NewRGBA(image.Rect(0, 0, 1, 1))}, nil
}

func (s *fakeSource) Close() error { s.closed.Store(true); return nil }

// fakeExec takes delay per frame and calls onExit twice.
type fakeExec struct {
	delay  time.Duration
	onExit func(anytime.Exit, []float32, []uint8)
	image  []float32
	runs   int
}

func (x *fakeExec) Image() []float32 { return x.image }

func (x *fakeExec) Run(ctx context.Context) (anytime.Result, error) {
	x.runs++
	time.Sleep(x.delay)
	if x.onExit != nil {
		x.onExit(anytime.Exit{Exit: 1}, nil, nil)
		x.onExit(anytime.Exit{Exit: 2}, nil, nil)
	}
	return anytime.Result{Halt: anytime.ReasonLastExit}, ctx.Err()
}

// recorder is a sink that records frame IDs and exits.
type recorder struct {
	mu     sync.Mutex
	frames []uint64
	errs   []uint64
	exits  []int
	onDone func()
}

func (r *recorder) Frame(o *Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.Err != nil {
		r.errs = append(r.errs, o.Frame.ID)
	} else {
		r.frames = append(r.frames, o.Frame.ID)
	}
	if r.onDone != nil {
		r.onDone()
	}
}

func (r *recorder) Exit(f *source.Frame, e anytime.Exit, _ []float32, _ []uint8) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exits = append(r.exits, int(f.ID)*10+e.Exit)
}

func noPreprocess([]float32, *source.Frame) error { return nil }

var quiet = slog.New(slog.DiscardHandler)

func TestEveryFrameInOrderWhenWaiting(t *testing.T) {
	src := &fakeSource{n: 50, bad: 7}
	rec := &recorder{}
	p := New(src, []Sink{rec}, Options{}, quiet)
	x := &fakeExec{delay: 100 * time.Microsecond}
	x.onExit = p.OnExit
	if err := p.Run(context.Background(), x, noPreprocess); err != nil {
		t.Fatal(err)
	}
	if len(rec.frames) != 49 || len(rec.errs) != 1 || rec.errs[0] != 7 {
		t.Fatalf("got %d frames and errors %v, want 49 and [7]", len(rec.frames), rec.errs)
	}
	for i := 1; i < len(rec.frames); i++ {
		if rec.frames[i] <= rec.frames[i-1] {
			t.Fatalf("frames out of order: %v", rec.frames)
		}
	}
	if rec.exits[0] != 11 || rec.exits[1] != 12 || len(rec.exits) != 98 {
		t.Errorf("progressive exits: got %v...", rec.exits[:2])
	}
	st := p.Stats()
	if st.Processed != 49 || st.Failed != 1 || st.Dropped != 0 || !src.closed.Load() {
		t.Errorf("stats %+v, closed %v", st, src.closed.Load())
	}
}

func TestDropsWhenBusyAndCountsThem(t *testing.T) {
	src := &fakeSource{n: 200}
	rec := &recorder{}
	p := New(src, []Sink{rec}, Options{DropWhenBusy: true}, quiet)
	x := &fakeExec{delay: 2 * time.Millisecond} // far slower than capture
	if err := p.Run(context.Background(), x, noPreprocess); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Dropped == 0 {
		t.Fatal("a slow executor dropped nothing")
	}
	if st.Processed+st.Dropped != 200 || int(st.Processed) != len(rec.frames) {
		t.Errorf("processed %d + dropped %d != 200 captured (sink saw %d)", st.Processed, st.Dropped, len(rec.frames))
	}
	for i := 1; i < len(rec.frames); i++ {
		if rec.frames[i] <= rec.frames[i-1] {
			t.Fatalf("frames out of order: %v", rec.frames)
		}
	}
	if last := rec.frames[len(rec.frames)-1]; last != 200 {
		t.Errorf("newest frame %d was not processed last (want 200)", last)
	}
}

func TestShutdownFinishesTheFrameInFlight(t *testing.T) {
	gate := make(chan struct{}, 100)
	for range 100 {
		gate <- struct{}{}
	}
	src := &fakeSource{n: 100, gate: gate}
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	rec.onDone = func() {
		if len(rec.frames) == 3 {
			cancel()
		}
	}
	p := New(src, []Sink{rec}, Options{}, quiet)
	x := &fakeExec{delay: time.Millisecond}
	done := make(chan error)
	go func() { done <- p.Run(ctx, x, noPreprocess) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if len(rec.frames) != 3 || x.runs != 3 || !src.closed.Load() {
		t.Errorf("got %d frames from %d runs (closed %v), want 3 finished and nothing after", len(rec.frames), x.runs, src.closed.Load())
	}
}

func TestSourceFailureIsReturned(t *testing.T) {
	src := &fakeSource{n: 2, failErr: errors.New("source rtsp://cam: the stream ended")}
	rec := &recorder{}
	p := New(src, []Sink{rec}, Options{}, quiet)
	err := p.Run(context.Background(), &fakeExec{}, noPreprocess)
	if err == nil || len(rec.frames) != 2 {
		t.Fatalf("got %v after %d frames, want the stream error after 2", err, len(rec.frames))
	}
}

// deafSource ignores its context: Next blocks until Close, as a source
// stuck in a read that only closing can end.
type deafSource struct {
	waiting chan struct{} // closed when Next blocks
	closed  chan struct{}
	once    sync.Once
}

func (s *deafSource) Next(context.Context) (source.Frame, error) {
	close(s.waiting)
	<-s.closed
	return source.Frame{}, io.EOF
}

func (s *deafSource) Close() error { s.once.Do(func() { close(s.closed) }); return nil }

// TestShutdownDoesNotWaitForABlockedSource: a source blocked in Next is
// closed when ctx ends, so Run returns instead of waiting for a frame.
func TestShutdownDoesNotWaitForABlockedSource(t *testing.T) {
	src := &deafSource{waiting: make(chan struct{}), closed: make(chan struct{})}
	p := New(src, nil, Options{}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, &fakeExec{}, noPreprocess) }()
	<-src.waiting
	if p.SourceWaitingSince().IsZero() {
		t.Error("capture waits in Next, but SourceWaitingSince is zero")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a guard against a hung test
		t.Fatal("Run did not return after cancel while the source was blocked")
	}
	if !p.SourceWaitingSince().IsZero() {
		t.Error("SourceWaitingSince is set after Run returned")
	}
}
