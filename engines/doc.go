// Package engines declares what the executor needs from an inference
// backend: a bundle's stages opened once, sharing preallocated buffers (the
// image, the mask, every carried state, each exit's logits), run one stage
// at a time. engines/ort implements it on ONNX Runtime; enginestest has a
// pure-Go fake.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package engines
