// Package masking owns the per-pixel arithmetic of confidence adaptivity:
// confidence maps (max softmax, heatmap peak), the mask of pixels still to
// compute, copy aggregation of exits, nearest resizing of masks to each
// layer's resolution and the paper's effective-MAC accounting.
//
// Tensors are batch-1 NCHW float32 slices laid out channel after channel
// ([C][H*W]). Every function writes into buffers the caller owns, so the
// per-frame path allocates nothing.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package masking
