// Package imaging owns pixels in and out of the runtime: decoding frames
// (PNG, JPEG; grey, paletted and 16-bit images are converted to 8-bit RGB),
// bilinear resizing into a bundle's input tensor with its scale, mean and
// std, and turning merged logits back into label maps, paletted PNGs and
// colour overlays at the frame's own size.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package imaging
