//go:build cgo

package native

import "fmt"

// maxThreads bounds a Shared's worker count.
const maxThreads = 256

// Shared is what stages that never run at the same time share: one set of
// buffers, each as large as the largest of the stages' buffers of its rank,
// and one pool of worker goroutines. An engine that runs a bundle's stages
// one after another loads them from one Shared, so that its buffer memory is
// the largest stage's rather than the sum.
//
// Loading and running are not safe for concurrent use: stages of one Shared
// run one at a time, and Load must not overlap a Run.
type Shared struct {
	pool   *pool
	bufs   [][]float32 // the buffers, largest first
	gen    uint64      // bumped whenever bufs change, so stages rebind
	closed bool
}

// NewShared starts threads-1 workers (the caller of Run is the last one).
func NewShared(threads int) (*Shared, error) {
	if threads < 1 || threads > maxThreads {
		return nil, fmt.Errorf("threads %d, want 1..%d", threads, maxThreads)
	}
	return &Shared{pool: newPool(threads), gen: 1}, nil
}

// Load is the package's Load with sh's buffers and workers; the stage
// stays usable until it or sh is closed.
func (sh *Shared) Load(planPath string, height, width int) (*Stage, error) {
	if sh.closed {
		return nil, fmt.Errorf("native plan %s: %w", planPath, ErrClosed)
	}
	return load(sh, planPath, height, width)
}

// Bytes is the memory of sh's buffers.
func (sh *Shared) Bytes() int64 {
	var n int64
	for _, b := range sh.bufs {
		n += 4 * int64(len(b))
	}
	return n
}

// Close stops the workers and drops the buffers; the stages loaded from sh
// return ErrClosed from Run afterwards. It is safe to call more than once.
func (sh *Shared) Close() error {
	if sh.closed {
		return nil
	}
	sh.closed = true
	sh.pool.stop()
	sh.bufs = nil
	return nil
}

// reserve grows the buffers to hold sizes (floats, largest first): buffer k
// becomes at least sizes[k] long. A buffer that grows is allocated anew, and
// the stages bound to the old one rebind at their next Run.
func (sh *Shared) reserve(sizes []int) {
	grown := false
	for k, n := range sizes {
		if k == len(sh.bufs) {
			sh.bufs = append(sh.bufs, nil)
		}
		if len(sh.bufs[k]) < n {
			sh.bufs[k] = make([]float32, n)
			grown = true
		}
	}
	if grown {
		sh.gen++
	}
}
