// Package pipeline moves frames from a source through preprocessing and the
// anytime executor to the sinks. Capture runs in its own goroutine; when the
// executor falls behind a live source, the pending frame is replaced by the
// newest one and the drop is counted, so nothing queues without bound. On
// shutdown the frame in flight is finished, the rest are dropped.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package pipeline
