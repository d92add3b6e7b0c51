// Package bundle owns the model bundle (format anytime-bundle/1): the
// manifest types, loading, validation with errors that name the file and the
// field, class palettes and keypoint skeletons. It is pure Go.
//
// A bundle is a directory holding bundle.json and one ONNX file per stage;
// the Python toolchain in models/adpc writes it and the runtime reads it.
// The contract is docs/bundle.md.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package bundle
