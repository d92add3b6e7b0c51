// Package trt holds the choice and settings of ONNX Runtime execution
// providers as plain Go: the ordered provider list and its fall-back rules,
// TensorRT and CUDA option maps, engine and timing cache directories with a
// versioned per-stage prefix, and optimisation-profile shapes. It imports no
// native code; engines/ort applies what it decides.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package trt
