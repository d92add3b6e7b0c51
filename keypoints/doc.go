// Package keypoints turns the heatmaps of a keypoints bundle into joint
// positions and draws them.
//
// Decode takes the merged heatmaps of an exit ([J][h][w] at the bundle's
// output stride), finds each joint's arg-max (the first maximum in row-major
// order), refines it to sub-cell precision with a parabola through the
// maximum and its neighbours on each axis (offset clamped to half a cell),
// and maps it to input pixels: x = (u + 0.5)·stride − 0.5. This is the rule
// of the Python toolchain (models/adpc/data/pose.py), so both sides decode
// the same points. Draw renders the skeleton and the joints onto an RGBA
// image. Both are pure functions over caller-owned buffers; Decode does not
// allocate.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package keypoints
