// Package nvml is the power backend for discrete NVIDIA GPUs, and the only
// package that imports go-nvml. The sampler reads board power, the total
// energy counter, the GPU temperature with its slowdown and shutdown
// thresholds, the current clock-event (throttle) reasons, the enforced power
// limit, clocks and utilisation.
//
// It is chosen by successfully reading a value, not by Init succeeding: on
// Jetson (JetPack 6) NVML initialises and then answers NOT_SUPPORTED to
// every query, and Open reports ErrNotSupported so the caller falls back to
// sysfs. go-nvml needs cgo; without it this package still builds and Open
// returns ErrUnavailable. libnvidia-ml is loaded at run time, so a missing
// driver is an error from Open, never a build failure.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package nvml
