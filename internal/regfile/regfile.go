// Package regfile opens and reads input files that must be regular files of
// bounded size: manifests, images, tensors. A device (/dev/zero), a FIFO, a
// socket or a directory given where a file is expected is refused at once,
// without blocking (a FIFO is opened non-blocking) and without reading it, and
// a file larger than the caller's limit is refused before it is read.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped when a path names something other than a regular
// file (after following symbolic links).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when a file is larger than the caller allows.
var ErrTooLarge = errors.New("file too large")

// Open opens path for reading and checks that it is a regular file. The
// open never blocks on a FIFO. The caller closes the file.
func Open(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(st.Mode()))
	}
	return f, st, nil
}

// Read returns the contents of the regular file path, refusing it when it
// is larger than limit bytes. The error names the path.
func Read(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes (limit %d)", path, ErrTooLarge, st.Size(), limit)
	}
	// The file may grow between Stat and the read: read one byte past the
	// limit to notice.
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, limit)
	}
	return raw, nil
}

// kind names a non-regular file type for an error message.
func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	default:
		return "mode " + m.String()
	}
}
