// Package ort runs bundles on ONNX Runtime through onnxruntime_go; it is the
// only importer of that package. The library is loaded at run time from a
// configurable path; builds without cgo get a twin whose every call returns
// engines.ErrUnavailable.
//
// One AdvancedSession is created per stage, with every input and output bound
// to buffers allocated once: a stage's state outputs are the very tensors
// later stages read, so no frame copies or allocates tensors.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package ort
