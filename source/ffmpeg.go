package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ffmpegInput is how ffmpeg reads one URI.
type ffmpegInput struct {
	args    []string // ffmpeg input options ending in -i INPUT
	loop    bool     // restart a file at its end
	live    bool     // a camera or stream: its end is an error
	network bool     // a network stream: reopened when lost or stalled
}

// probeTimeout bounds how long finding a stream's size may take.
const probeTimeout = 15 * time.Second

// waitDelay bounds how long ending a decoder may wait for its output pipes
// to close after it was killed.
const waitDelay = 2 * time.Second

// openFFmpeg probes uri's size and starts ffmpeg decoding it to raw RGB.
func openFFmpeg(ctx context.Context, uri string, in ffmpegInput, o Options) (*pipeSource, error) {
	label, secrets := redact(uri)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return nil, fmt.Errorf("source %s: ffmpeg not found on PATH: install the ffmpeg package (apt-get install ffmpeg)", label)
	}
	start := func(ctx context.Context) (*decoder, error) {
		w, h, err := probeSize(ctx, label, secrets, in.args)
		if err != nil {
			return nil, err
		}
		args := []string{"-nostdin", "-hide_banner", "-loglevel", "error"}
		if in.loop {
			args = append(args, "-stream_loop", "-1")
		}
		args = append(args, in.args...)
		args = append(args, "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
		d, err := startDecoder("ffmpeg", args, w, h)
		if err != nil {
			return nil, fmt.Errorf("source %s: start ffmpeg: %s", label, scrub(err.Error(), secrets))
		}
		return d, nil
	}
	return newPipeSource(ctx, label, secrets, start, in.live, in.network, o)
}

// probeSize asks ffprobe for the first video stream's size. label and
// secrets keep the URI's credentials out of the errors.
func probeSize(ctx context.Context, label string, secrets []string, inputArgs []string) (int, int, error) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return 0, 0, fmt.Errorf("source %s: ffprobe not found on PATH: install the ffmpeg package (apt-get install ffmpeg)", label)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	args := []string{"-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x"}
	for _, a := range inputArgs {
		if a != "-re" && a != "-i" {
			args = append(args, a)
		}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay
	out, err := cmd.Output()
	if ctx.Err() != nil {
		if cerr := context.Cause(ctx); !errors.Is(cerr, context.DeadlineExceeded) {
			return 0, 0, fmt.Errorf("source %s: probe: %w", label, cerr)
		}
		return 0, 0, fmt.Errorf("source %s: no answer within %v (unreachable stream or camera?)", label, probeTimeout)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("source %s: cannot open: %s", label, scrub(firstLine(stderr.String(), err), secrets))
	}
	ws, hs, ok := strings.Cut(strings.TrimSpace(string(out)), "x")
	w, werr := strconv.Atoi(ws)
	h, herr := strconv.Atoi(strings.Fields(hs + " ")[0])
	if !ok || werr != nil || herr != nil || w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return 0, 0, fmt.Errorf("source %s: no usable video stream found (ffprobe said %q; want 1 to %d pixels a side)",
			label, scrub(strings.TrimSpace(string(out)), secrets), maxSide)
	}
	return w, h, nil
}

// maxSide bounds a decoded frame's width and height (a 16k video), so a
// bogus probe answer cannot make the reader allocate without limit.
const maxSide = 16384

// decoder is one running subprocess that writes raw RGB24 frames of w×h to
// its stdout, and the goroutine that reads them.
type decoder struct {
	cmd    *exec.Cmd
	out    *os.File // read end of the subprocess's stdout
	stderr *tailBuffer
	w, h   int

	frames chan []byte   // full frames, closed when the reader stops
	free   chan []byte   // buffers the reader may fill
	quit   chan struct{} // closed by stop
	// readErr is why the reader stopped; set before frames is closed.
	readErr error

	stopOnce sync.Once
	waitOnce sync.Once
	waitErr  error
}

// startDecoder starts name with args; its stdout is read in frames of
// w×h×3 bytes by a goroutine, two buffers deep.
func startDecoder(name string, args []string, w, h int) (*decoder, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = wr
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		r.Close()
		wr.Close()
		return nil, err
	}
	wr.Close() // the subprocess holds its own copy
	d := &decoder{cmd: cmd, out: r, stderr: stderr, w: w, h: h,
		frames: make(chan []byte, 1), free: make(chan []byte, 2), quit: make(chan struct{})}
	d.free <- make([]byte, w*h*3)
	d.free <- make([]byte, w*h*3)
	go d.read()
	return d, nil
}

// read fills free buffers from the pipe and hands them over until the pipe
// ends or stop is called.
func (d *decoder) read() {
	defer close(d.frames)
	for {
		var buf []byte
		select {
		case buf = <-d.free:
		case <-d.quit:
			return
		}
		if _, err := io.ReadFull(d.out, buf); err != nil {
			d.readErr = err
			return
		}
		select {
		case d.frames <- buf:
		case <-d.quit:
			return
		}
	}
}

// stop kills the subprocess, unblocks the reader and reaps the process. It
// is safe to call more than once and from any goroutine.
func (d *decoder) stop() {
	d.stopOnce.Do(func() {
		close(d.quit)
		d.cmd.Process.Kill()
		d.out.Close()
	})
	d.wait()
}

// wait reaps the subprocess once and returns how it ended.
func (d *decoder) wait() error {
	d.waitOnce.Do(func() { d.waitErr = d.cmd.Wait() })
	return d.waitErr
}

// pipeSource reads frames from a decoder subprocess. Next honours its ctx
// and Close at every point: waiting for a frame, for a reopen's backoff, or
// for a probe. A source silent for longer than its stall time is reported
// (EventStalled); a network stream that stalls or ends is reopened with a
// bounded, jittered backoff until ctx ends or it is closed.
type pipeSource struct {
	label   string   // the URI redacted: frames, errors and events carry it
	secrets []string // what redact hid, scrubbed from decoder output
	start   func(context.Context) (*decoder, error)
	live    bool // its end is an error
	network bool // reopened when lost or stalled

	stallAfter time.Duration
	clock      Clock
	jitter     func() float64
	onEvent    func(Event)

	mu     sync.Mutex
	cur    *decoder // nil while a network stream is being reopened
	closed bool
	// closing is cancelled by Close: waits and a reopen's probe end.
	closing context.Context
	cancel  context.CancelFunc

	// Owned by the goroutine calling Next.
	id        uint64
	lastFrame time.Time // or the last (re)open
	unhealthy bool      // stalled or lost, and no frame since
	reported  bool      // this silence was reported stalled: no more timers
	attempts  int       // reopen attempts since the last frame
}

func newPipeSource(ctx context.Context, label string, secrets []string, start func(context.Context) (*decoder, error), live, network bool, o Options) (*pipeSource, error) {
	d, err := start(ctx)
	if err != nil {
		return nil, err
	}
	s := &pipeSource{label: label, secrets: secrets, start: start, live: live, network: network,
		stallAfter: o.StallAfter, clock: o.Clock, jitter: defaultJitter, onEvent: o.OnEvent,
		cur: d}
	s.closing, s.cancel = context.WithCancel(context.Background())
	if s.stallAfter <= 0 {
		s.stallAfter = DefaultStallAfter
	}
	if s.clock == nil {
		s.clock = wallClock{}
	}
	s.lastFrame = s.clock.Now()
	return s, nil
}

// String is the source's URI, redacted.
func (s *pipeSource) String() string { return s.label }

// ErrClosed is wrapped by Next on a source that was closed.
var ErrClosed = errors.New("source closed")

// Next implements Source. Silence is timed from the later of the last frame
// (or reopen) and the call: a consumer that was busy does not make the
// source look stalled.
func (s *pipeSource) Next(ctx context.Context) (Frame, error) {
	called := s.clock.Now()
	for {
		d, err := s.decoder(ctx)
		if err != nil {
			return Frame{}, err
		}
		var stall <-chan time.Time
		if !s.reported {
			from := s.lastFrame
			if called.After(from) {
				from = called
			}
			stall = s.clock.After(s.stallAfter - s.clock.Now().Sub(from))
		}
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-s.closing.Done():
			return Frame{}, fmt.Errorf("source %s: %w", s.label, ErrClosed)
		case buf, ok := <-d.frames:
			if ok {
				return s.frame(d, buf), nil
			}
			if s.isClosed() {
				return Frame{}, fmt.Errorf("source %s: %w", s.label, ErrClosed)
			}
			err := s.ended(d)
			if !s.network || errors.Is(err, io.EOF) {
				return Frame{}, err
			}
			s.drop(d, Event{Kind: EventLost, Err: err})
		case <-stall:
			s.unhealthy, s.reported = true, true
			if s.network {
				s.drop(d, Event{Kind: EventStalled})
			} else {
				s.emit(Event{Kind: EventStalled})
			}
		}
	}
}

// frame converts a filled buffer into a Frame and gives the buffer back.
func (s *pipeSource) frame(d *decoder, buf []byte) Frame {
	img := image.NewRGBA(image.Rect(0, 0, d.w, d.h))
	for i, j := 0, 0; i < len(buf); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = buf[i], buf[i+1], buf[i+2], 255
	}
	d.free <- buf
	now := s.clock.Now()
	if s.unhealthy {
		s.emit(Event{Kind: EventResumed})
		s.unhealthy = false
	}
	s.lastFrame, s.attempts, s.reported = now, 0, false
	s.id++
	return Frame{ID: s.id, Source: s.label, Captured: time.Now(), Image: img}
}

// ended is why decoder d stopped delivering: io.EOF at the end of a file,
// else an error quoting the decoder's last words (redacted).
func (s *pipeSource) ended(d *decoder) error {
	werr := d.wait()
	switch {
	case errors.Is(d.readErr, io.EOF) && werr == nil && !s.live:
		return io.EOF
	case errors.Is(d.readErr, io.EOF) && werr == nil:
		return fmt.Errorf("source %s: the stream ended", s.label)
	default:
		return fmt.Errorf("source %s: decoder stopped: %s", s.label, scrub(firstLine(d.stderr.String(), werr), s.secrets))
	}
}

// drop reports ev, ends decoder d and leaves the source to be reopened.
func (s *pipeSource) drop(d *decoder, ev Event) {
	s.emit(ev)
	s.unhealthy = true
	s.mu.Lock()
	if s.cur == d {
		s.cur = nil
	}
	s.mu.Unlock()
	d.stop()
}

// decoder returns the running decoder, reopening a network stream first
// when it has none: attempt n waits backoff(n), and each failure is
// reported. It returns early when ctx ends or the source is closed.
func (s *pipeSource) decoder(ctx context.Context) (*decoder, error) {
	s.mu.Lock()
	d, closed := s.cur, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("source %s: %w", s.label, ErrClosed)
	case d != nil:
		return d, nil
	}
	for {
		s.attempts++
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closing.Done():
			return nil, fmt.Errorf("source %s: %w", s.label, ErrClosed)
		case <-s.clock.After(backoff(s.attempts, s.jitter)):
		}
		d, err := s.startUnlessClosed(ctx)
		if ctx.Err() != nil {
			if d != nil {
				d.stop()
			}
			return nil, ctx.Err()
		}
		if err != nil && s.isClosed() {
			return nil, fmt.Errorf("source %s: %w", s.label, ErrClosed)
		}
		if err != nil {
			s.emit(Event{Kind: EventReopenFailed, Attempt: s.attempts, Err: err})
			continue
		}
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.cur = d
		}
		s.mu.Unlock()
		if closed {
			d.stop()
			return nil, fmt.Errorf("source %s: %w", s.label, ErrClosed)
		}
		s.lastFrame, s.reported = s.clock.Now(), false // a new silence is timed anew
		s.emit(Event{Kind: EventReopened, Attempt: s.attempts})
		return d, nil
	}
}

// startUnlessClosed starts a decoder under ctx, cancelled early by Close.
func (s *pipeSource) startUnlessClosed(ctx context.Context) (*decoder, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	return s.start(ctx)
}

// emit completes ev and hands it to Options.OnEvent.
func (s *pipeSource) emit(ev Event) {
	if s.onEvent == nil {
		return
	}
	ev.Source = s.label
	ev.Silent = s.clock.Now().Sub(s.lastFrame)
	s.onEvent(ev)
}

func (s *pipeSource) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close implements Source: it ends the subprocess. It may be called from
// any goroutine, also while Next is waiting, which then returns ErrClosed.
func (s *pipeSource) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	d := s.cur
	s.cur = nil
	s.mu.Unlock()
	if d != nil {
		d.stop()
	}
	return nil
}

func firstLine(s string, err error) string {
	s = strings.TrimSpace(s)
	if s == "" {
		if err != nil {
			return err.Error()
		}
		return "no error output"
	}
	lines := strings.Split(s, "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
