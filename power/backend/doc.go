// Package backend chooses and opens the power backend: NVML on a discrete
// GPU, INA3221 and thermal zones on a Jetson, or the estimator where no
// sensor exists. Auto-selection tries them in that order and keeps the first
// that reads a value (NVML initialising is not enough: on Jetson it
// initialises and reads nothing), and says why each was passed over.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package backend
