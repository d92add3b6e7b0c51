package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anytime-edge/edge/imaging"
)

// images yields image files in name order.
type images struct {
	name  string // what was opened
	paths []string
	loop  bool
	next  int
	id    uint64
}

var imageExts = []string{".png", ".jpg", ".jpeg"}

// openImages lists a file, a directory's PNG/JPEG files or a glob's matches.
func openImages(pattern string, loop bool) (*images, error) {
	var paths []string
	if st, err := os.Stat(pattern); err == nil && st.IsDir() {
		entries, err := os.ReadDir(pattern)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", pattern, err)
		}
		for _, e := range entries {
			if !e.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
				paths = append(paths, filepath.Join(pattern, e.Name()))
			}
		}
	} else if err == nil {
		paths = []string{pattern}
	} else {
		matches, gerr := filepath.Glob(pattern)
		if gerr != nil {
			return nil, fmt.Errorf("source %s: bad pattern: %w", pattern, gerr)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("source %s: no such file, and no file matches it", pattern)
		}
		paths = matches
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("source %s: no PNG or JPEG files in the directory", pattern)
	}
	slices.Sort(paths)
	return &images{name: pattern, paths: paths, loop: loop}, nil
}

// Next implements Source. An image that cannot be decoded is returned as an
// error naming it; the next call moves on to the following file.
func (s *images) Next(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if s.next == len(s.paths) {
		if !s.loop {
			return Frame{}, io.EOF
		}
		s.next = 0
	}
	path := s.paths[s.next]
	s.next++
	s.id++
	img, err := imaging.Load(path)
	if err != nil {
		return Frame{}, &FrameError{ID: s.id, Source: path, Err: err}
	}
	return Frame{ID: s.id, Source: path, Captured: time.Now(), Image: img}, nil
}

// Close implements Source.
func (s *images) Close() error { return nil }

// String is the file, directory or glob the source reads.
func (s *images) String() string { return s.name }

// FrameError is one frame that could not be read; the source goes on.
type FrameError struct {
	ID     uint64
	Source string
	Err    error
}

func (e *FrameError) Error() string { return fmt.Sprintf("frame %d: %v", e.ID, e.Err) }

// Unwrap returns the cause.
func (e *FrameError) Unwrap() error { return e.Err }
