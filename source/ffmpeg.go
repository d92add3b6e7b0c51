package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ffmpegInput is how ffmpeg reads one URI.
type ffmpegInput struct {
	args  []string // ffmpeg input options ending in -i INPUT
	loop  bool     // restart a file at its end
	live  bool     // a camera or stream: its end is an error
	label string
}

// pipeSource reads raw RGB24 frames of a known size from a subprocess.
type pipeSource struct {
	uri    string
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *tailBuffer
	w, h   int
	live   bool
	buf    []byte
	id     uint64
}

// probeTimeout bounds how long finding a stream's size may take.
const probeTimeout = 15 * time.Second

func openFFmpeg(ctx context.Context, uri string, in ffmpegInput) (*pipeSource, error) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return nil, fmt.Errorf("source %s: ffmpeg not found on PATH: install the ffmpeg package (apt-get install ffmpeg)", uri)
	}
	w, h, err := probeSize(ctx, uri, in.args)
	if err != nil {
		return nil, err
	}
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error"}
	if in.loop {
		args = append(args, "-stream_loop", "-1")
	}
	args = append(args, in.args...)
	args = append(args, "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
	return startPipe(uri, exec.Command("ffmpeg", args...), w, h, in.live)
}

// probeSize asks ffprobe for the first video stream's size.
func probeSize(ctx context.Context, uri string, inputArgs []string) (int, int, error) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return 0, 0, fmt.Errorf("source %s: ffprobe not found on PATH: install the ffmpeg package (apt-get install ffmpeg)", uri)
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
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return 0, 0, fmt.Errorf("source %s: no answer within %v (unreachable stream or camera?)", uri, probeTimeout)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("source %s: cannot open: %s", uri, firstLine(stderr.String(), err))
	}
	ws, hs, ok := strings.Cut(strings.TrimSpace(string(out)), "x")
	w, werr := strconv.Atoi(ws)
	h, herr := strconv.Atoi(strings.Fields(hs + " ")[0])
	if !ok || werr != nil || herr != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("source %s: no video stream found (ffprobe said %q)", uri, strings.TrimSpace(string(out)))
	}
	return w, h, nil
}

func startPipe(uri string, cmd *exec.Cmd, w, h int, live bool) (*pipeSource, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("source %s: start %s: %w", uri, cmd.Path, err)
	}
	return &pipeSource{uri: uri, cmd: cmd, out: out, stderr: stderr, w: w, h: h, live: live, buf: make([]byte, w*h*3)}, nil
}

// Next implements Source.
func (s *pipeSource) Next(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if _, err := io.ReadFull(s.out, s.buf); err != nil {
		werr := s.cmd.Wait()
		switch {
		case errors.Is(err, io.EOF) && werr == nil && !s.live:
			return Frame{}, io.EOF
		case errors.Is(err, io.EOF) && werr == nil:
			return Frame{}, fmt.Errorf("source %s: the stream ended", s.uri)
		default:
			return Frame{}, fmt.Errorf("source %s: decoder stopped: %s", s.uri, firstLine(s.stderr.String(), werr))
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, s.w, s.h))
	for i, j := 0, 0; i < len(s.buf); i, j = i+3, j+4 {
		img.Pix[j], img.Pix[j+1], img.Pix[j+2], img.Pix[j+3] = s.buf[i], s.buf[i+1], s.buf[i+2], 255
	}
	s.id++
	return Frame{ID: s.id, Source: s.uri, Captured: time.Now(), Image: img}, nil
}

// Close implements Source: it ends the subprocess.
func (s *pipeSource) Close() error {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
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
