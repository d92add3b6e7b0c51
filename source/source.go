package source

import (
	"context"
	"errors"
	"fmt"
	"image"
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
	// (io.EOF).
	Next(ctx context.Context) (Frame, error)
	// Close releases the source (ends a subprocess).
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
}

// ErrUnsupported is wrapped when a URI names a scheme this package lacks.
var ErrUnsupported = errors.New("unsupported source")

// Open opens the source a URI names: a file, glob or directory of images
// (with or without file://), a video file (file://x.mp4), rtsp://,
// v4l2:///dev/videoN or csi://N.
func Open(ctx context.Context, uri string, o Options) (Source, error) {
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
		if isVideo(rest) {
			s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-re", "-i", rest}, loop: o.Loop, label: rest})
		} else {
			s, err = openImages(rest, o.Loop)
		}
	case "rtsp", "rtsps":
		s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-rtsp_transport", "tcp", "-i", uri}, live: true, label: uri})
	case "v4l2":
		s, err = openFFmpeg(ctx, uri, ffmpegInput{args: []string{"-f", "v4l2", "-i", rest}, live: true, label: uri})
	case "csi":
		s, err = openCSI(uri, rest, o)
	default:
		return nil, fmt.Errorf("%w: %q (want a file, glob or directory, file://, rtsp://, v4l2:// or csi://)", ErrUnsupported, uri)
	}
	if err != nil {
		return nil, err
	}
	if o.FPS > 0 {
		s = paced(s, o.FPS)
	}
	return s, nil
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
