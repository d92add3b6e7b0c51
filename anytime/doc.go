// Package anytime is the executor of anytime dense prediction: it runs a
// bundle's stages in order, merges each exit with the earlier ones (copy
// aggregation), derives the mask of pixels still to compute, asks a halting
// Policy before every stage after the first, and records what each exit
// cost. Each exit's merged result is handed to the caller the moment it
// exists.
//
// It depends on small interfaces (engines.Engine, Policy, Meter), not on
// ONNX Runtime or any power sensor. An Executor is used by one goroutine;
// only SetThreshold and SetHardDeadline may be called from others.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package anytime
