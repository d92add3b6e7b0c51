package source

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Frame is one captured image.
type Frame struct {
	// ID counts frames from 1 within a source.
	ID uint64
	// Source is the URI (or file name) the frame came from.
	Source string
	// Captured is when the frame was read from the device or file.
	Captured time.Time
	Image    *image.RGBA
}

// Source yields frames until it is exhausted (io.EOF) or closed.
type Source interface {
	// Next blocks until the next frame, ctx ends, or the source is done
	// (io.EOF). It is called from one goroutine at a time.
	Next(ctx context.Context) (Frame, error)
	// Close releases the source (ends a subprocess). It may be called
	// more than once, and from another goroutine while Next blocks, which
	// then returns promptly.
	Close() error
}

// Options are the settings every source honours.
type Options struct {
	// Loop restarts a finite source (files, video files) at its end.
	Loop bool
	// FPS, when positive, paces the source to at most this frame rate.
	FPS float64
	// Width and Height are the capture size of cameras that need one
	// (CSI); zero takes 1280×720.
	Width, Height int
	// StallAfter is how long a video, stream or camera may go without a
	// frame before it is reported (EventStalled) and, for a network
	// stream (rtsp, http), reopened; zero takes DefaultStallAfter.
	StallAfter time.Duration
	// OnEvent, when set, receives the health events of video, stream and
	// camera sources (stalled, lost, reopened, resumed). It is called on
	// the goroutine calling Next and must not block.
	OnEvent func(Event)
	// Clock measures silence and reopen backoff; nil is the wall clock.
	Clock Clock
}

// ErrUnsupported is wrapped when a URI names a scheme this package lacks.
var ErrUnsupported = errors.New("unsupported source")

// Open opens the source a URI names: a file, glob or directory of images
// (with or without file://), a video file (file://x.mp4), rtsp:// or
// http:// streams, v4l2:///dev/videoN or csi://N.
//
// A file:// URI names a local path (file://clip.mp4 is relative,
// file:///data/clip.mp4 absolute); one that wraps another URI or names
// another host (file://host/share/clip.mp4) is refused,
// and a local video is handed to ffmpeg as a path, never as a URL or an
// option, whatever its name. Errors, Frame.Source and String() carry the
// URI redacted (see Redact); only the decoder is given the URI itself.
func Open(ctx context.Context, uri string, o Options) (Source, error) {
	label := Redact(uri)
	scheme, rest, hasScheme := strings.Cut(uri, "://")
	if !hasScheme {
		scheme, rest = "file", uri
	}
	var (
		s   Source
		err error
	)
	switch scheme {
	case "file":
		path, perr := localPath(label, rest, hasScheme)
		switch {
		case perr != nil:
			return nil, perr
		case isVideo(path):
			// ffmpeg's file: protocol takes the rest as a path: a name
			// with a colon or a leading '-' stays a file name.
			s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-re", "-i", "file:" + path}, loop: o.Loop}, o)
		default:
			s, err = openImages(path, o.Loop)
		}
	case "rtsp", "rtsps":
		s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-rtsp_transport", "tcp", "-i", uri}, live: true, network: true}, o)
	case "http", "https":
		s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-i", uri}, live: true, network: true}, o)
	case "v4l2":
		if !filepath.IsAbs(rest) {
			return nil, fmt.Errorf("source %s: want v4l2:///dev/videoN, an absolute device path", label)
		}
		s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-f", "v4l2", "-i", filepath.Clean(rest)}, live: true}, o)
	case "csi":
		s, err = openCSI(ctx, uri, rest, o)
	default:
		return nil, fmt.Errorf("%w: %q (want a file, glob or directory, file://, rtsp://, http://, v4l2:// or csi://)", ErrUnsupported, label)
	}
	if err != nil {
		return nil, err
	}
	if o.FPS > 0 {
		s = paced(s, o.FPS)
	}
	return s, nil
}

// localPath is the path a file:// URI's rest (or, uri false, a plain path)
// names. file://localhost/p is /p; a rest that is itself a URI is refused,
// and so is file://HOST/p where HOST is no local directory (file:// of a
// remote host).
func localPath(label, rest string, uri bool) (string, error) {
	if inner, _, nested := strings.Cut(rest, "://"); nested {
		return "", fmt.Errorf("%w: %s: file:// names a local path, not a %s:// URI", ErrUnsupported, label, inner)
	}
	if p, ok := strings.CutPrefix(rest, "localhost/"); ok {
		rest = "/" + p
	}
	if first, _, ok := strings.Cut(rest, "/"); uri && ok && first != "" && first != "." && first != ".." && !strings.ContainsAny(first, "*?[") {
		if st, err := os.Stat(first); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%w: %s: file:// names a local path, and %q is no local directory (file:// of another host is not supported)", ErrUnsupported, label, first)
		}
	}
	if rest == "" {
		return "", fmt.Errorf("source %s: no path after file://", label)
	}
	return rest, nil
}

var videoExts = []string{".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".h264", ".h265"}

func isVideo(path string) bool {
	lower := strings.ToLower(path)
	for _, e := range videoExts {
		if strings.HasSuffix(lower, e) {
			return true
		}
	}
	return false
}

// pacer limits a source to a frame rate.
type pacer struct {
	Source
	every time.Duration
	next  time.Time
}

func paced(s Source, fps float64) Source {
	return &pacer{Source: s, every: time.Duration(float64(time.Second) / fps)}
}

// String is the paced source's name (its URI, redacted).
func (p *pacer) String() string {
	if s, ok := p.Source.(fmt.Stringer); ok {
		return s.String()
	}
	return "paced source"
}

func (p *pacer) Next(ctx context.Context) (Frame, error) {
	if wait := time.Until(p.next); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Frame{}, ctx.Err()
		case <-t.C:
		}
	}
	f, err := p.Source.Next(ctx)
	p.next = time.Now().Add(p.every)
	return f, err
}
