package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anytime-edge/edge/source/sourcetest"
)

// fakeClock is a Clock that moves only when the test advances it. armed
// receives one value per After call, so a test knows when Next waits.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	armed  chan struct{}
	calls  int // After calls the test has waited for
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1e9, 0), armed: make(chan struct{}, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	}
	c.armed <- struct{}{}
	return ch
}

// advance moves the clock and fires every timer now due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// waitCalls blocks until After has been called n times in all.
func (c *fakeClock) waitCalls(t *testing.T, n int) {
	t.Helper()
	for ; c.calls < n; c.calls++ {
		select {
		case <-c.armed:
		case <-time.After(20 * time.Second): // a guard against a hung test, not a synchronisation
			t.Fatalf("the source waited on %d timers, want %d", c.calls, n)
		}
	}
}

// events records a source's events.
type events struct {
	mu   sync.Mutex
	got  []Event
	seen chan EventKind
}

func newEvents() *events { return &events{seen: make(chan EventKind, 100)} }

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
	e.seen <- ev.Kind
}

// waitFor blocks until an event of kind k has been seen.
func (e *events) waitFor(t *testing.T, k EventKind) {
	t.Helper()
	for {
		select {
		case got := <-e.seen:
			if got == k {
				return
			}
		case <-time.After(20 * time.Second): // a guard against a hung test
			t.Fatalf("no %s event; got %s", k, e)
		}
	}
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for _, ev := range e.got {
		s := string(ev.Kind)
		if ev.Attempt > 0 {
			s += fmt.Sprint("#", ev.Attempt)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

type next struct {
	f   Frame
	err error
}

func nextAsync(ctx context.Context, s Source) chan next {
	c := make(chan next, 1)
	go func() {
		f, err := s.Next(ctx)
		c <- next{f, err}
	}()
	return c
}

func wait(t *testing.T, c chan next, ev *events) next {
	t.Helper()
	select {
	case n := <-c:
		return n
	case <-time.After(20 * time.Second): // a guard against a hung test
		t.Fatalf("Next did not return; events %s", ev)
		return next{}
	}
}

const secretURI = "rtsp://operator:hunter2@10.0.0.7:8554/cam?token=s3cr3t"

// TestNetworkStreamStallsAndIsReopened runs a stream through a stall, a
// failed reopen, a decoder failure and two reopens, and checks the events,
// the frames and that no error, event or frame names the password.
func TestNetworkStreamStallsAndIsReopened(t *testing.T) {
	dir := sourcetest.FakeFFmpeg(t)
	sourcetest.Steer(t, dir, map[string]string{"frames1": "2", "frames2": "1", "then2": "fail", "frames3": "1"})
	clock := newFakeClock()
	ev := newEvents()
	const stall = 5 * time.Second
	s, err := Open(context.Background(), secretURI, Options{StallAfter: stall, Clock: clock, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var frames []Frame
	for range 2 {
		n := wait(t, nextAsync(ctx, s), ev)
		if n.err != nil {
			t.Fatal(n.err)
		}
		frames = append(frames, n.f)
	}
	c := nextAsync(ctx, s)
	clock.waitCalls(t, 3) // the third Next waits for a frame
	sourcetest.Steer(t, dir, map[string]string{"probefail": ""})
	clock.advance(stall) // silent for the stall time: stalled, reopen #1 after a backoff
	clock.waitCalls(t, 4)
	clock.advance(reopenMax) // #1 fails (the probe), #2 after a longer backoff
	clock.waitCalls(t, 5)
	clock.advance(reopenMax) // #2 opens: one frame, then the decoder fails
	n := wait(t, c, ev)
	if n.err != nil {
		t.Fatal(n.err)
	}
	frames = append(frames, n.f)
	c = nextAsync(ctx, s)
	clock.waitCalls(t, 8) // a stall timer, then the decoder failure: lost, reopen #1 after a backoff
	clock.advance(reopenMax)
	if n = wait(t, c, ev); n.err != nil {
		t.Fatal(n.err)
	}
	frames = append(frames, n.f)

	if want := "stalled reopen-failed#1 reopened#2 resumed lost reopened#1 resumed"; ev.String() != want {
		t.Errorf("events: got %q, want %q", ev.String(), want)
	}
	for i, f := range frames {
		if f.ID != uint64(i+1) || f.Image.Rect.Dx() != 4 || f.Source != "rtsp://operator:***@10.0.0.7:8554/cam?token=***" {
			t.Errorf("frame %d: got id %d, %v, source %q", i+1, f.ID, f.Image.Rect, f.Source)
		}
	}
	ev.mu.Lock()
	for _, e := range ev.got {
		text := fmt.Sprint(e.Source, " ", e.Err)
		if strings.Contains(text, "hunter2") || strings.Contains(text, "s3cr3t") || !strings.Contains(text, "operator:***@") {
			t.Errorf("event %s: %s shows a secret or no redacted URI", e.Kind, text)
		}
		if e.Kind == EventStalled && e.Silent != stall {
			t.Errorf("stalled after %v of silence, want %v", e.Silent, stall)
		}
	}
	ev.mu.Unlock()
	if str := fmt.Sprint(s); strings.Contains(str, "hunter2") || strings.Contains(str, "s3cr3t") {
		t.Errorf("String() = %q shows a secret", str)
	}
	// Only the subprocess gets the URI itself.
	args, _ := os.ReadFile(filepath.Join(dir, "ffmpeg.args3"))
	if !strings.Contains(string(args), secretURI) {
		t.Errorf("ffmpeg was not given the URI: %s", args)
	}
}

func TestErrorsNeverShowTheCredentials(t *testing.T) {
	dir := sourcetest.FakeFFmpeg(t)
	sourcetest.Steer(t, dir, map[string]string{"probefail": ""})
	_, err := Open(context.Background(), secretURI, Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cr3t") ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("probe failure: got %v, want the probe's error without the secrets", err)
	}
	_, err = Open(context.Background(), strings.Replace(secretURI, "rtsp", "v4l2", 1), Options{})
	if err == nil {
		t.Fatal("v4l2 with a host: want an error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v", err)
	}
	_, err = Open(context.Background(), "gopher://u:hunter2@x/", Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unsupported scheme: got %v", err)
	}
	// A camera's decoder failing quotes its input.
	sourcetest.Steer(t, dir, map[string]string{"count": "0", "frames1": "0", "then1": "fail"})
	s, err := Open(context.Background(), "v4l2:///dev/video9", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(context.Background()); err == nil || !strings.Contains(err.Error(), "decoder stopped: /dev/video9: Invalid data") {
		t.Errorf("got %v, want the decoder's error", err)
	}
}

// TestNextHonoursContextAndClose: a decoder that never writes a frame must
// not hold Next once ctx ends or the source is closed, and Close ends it; a
// local file that stalls is reported, not reopened.
func TestNextHonoursContextAndClose(t *testing.T) {
	sourcetest.FakeFFmpeg(t)
	clock := newFakeClock()
	ev := newEvents()
	s, err := Open(context.Background(), "clip.mp4", Options{Clock: clock, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := nextAsync(ctx, s)
	clock.waitCalls(t, 1) // Next waits for a frame
	cancel()
	if n := wait(t, c, ev); !errors.Is(n.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", n.err)
	}
	pid := s.(*pipeSource).cur.cmd.Process.Pid
	c = nextAsync(context.Background(), s)
	clock.waitCalls(t, 2)
	s.Close()
	if n := wait(t, c, ev); !errors.Is(n.err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", n.err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("decoder %d still running after Close: %v", pid, err)
	}

	s, err = Open(context.Background(), "clip.mp4", Options{Clock: clock, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c = nextAsync(context.Background(), s)
	clock.waitCalls(t, 3)
	clock.advance(DefaultStallAfter)
	ev.waitFor(t, EventStalled)
	s.Close()
	if n := wait(t, c, ev); !errors.Is(n.err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", n.err)
	}
	if ev.String() != "stalled" {
		t.Errorf("events: got %q, want only stalled (a local file is not reopened)", ev.String())
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	for n := 1; n <= 40; n++ {
		lo, hi := backoff(n, func() float64 { return 0.999999 }), backoff(n, func() float64 { return 0 })
		want := min(reopenMin<<min(n-1, 20), reopenMax)
		if hi != want || lo < want/2 || lo >= hi {
			t.Errorf("attempt %d: waits %v to %v, want %v less up to half", n, lo, hi, want)
		}
	}
}

// TestABusyConsumerIsNotAStall: a frame waiting while the consumer was busy
// for longer than the stall time is delivered, not taken for a stall (each
// round, with the old timing, select picked the stall half the time).
func TestABusyConsumerIsNotAStall(t *testing.T) {
	dir := sourcetest.FakeFFmpeg(t)
	sourcetest.Steer(t, dir, map[string]string{"frames1": "20"})
	clock := newFakeClock()
	ev := newEvents()
	s, err := Open(context.Background(), secretURI, Options{StallAfter: time.Second, Clock: clock, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id := uint64(1); id <= 20; id++ {
		n := wait(t, nextAsync(context.Background(), s), ev)
		if n.err != nil || n.f.ID != id {
			t.Fatalf("got frame %d, %v; want frame %d", n.f.ID, n.err, id)
		}
		if ev.String() != "" {
			t.Fatalf("events %q after a busy consumer, want none", ev)
		}
		clock.advance(time.Minute) // the consumer is busy with the frame
	}
}
