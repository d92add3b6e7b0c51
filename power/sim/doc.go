// Package sim is a deterministic simulated device for exercising the halting
// policy without hardware: stages whose time and energy depend on the active
// fraction, with seeded noise; a first-order thermal model heated by the
// power drawn; clock throttling above a trip temperature; and a stream of
// frames arriving at a fixed period. It drives any policy with the
// executor's call sequence (StartFrame, then Continue before each stage after
// the first and StageDone after each) and measures what the limits promise:
// deadline misses, energy per frame, windowed average power, exit depth
// against temperature.
//
// The simulated device is also the policy's State (temperature, throttle)
// and Window (an exact energy counter, as NVML's would be). Everything runs
// on a simulated clock; nothing sleeps, and the same seed gives the same
// numbers on every machine.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package sim
