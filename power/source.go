package power

import "github.com/anytime-edge/edge/anytime"

// Source names where a power, energy or temperature value came from, so an
// estimate is never passed off as a measurement. It is the executor's
// anytime.Source, so a Recorder's stage energies reach the executor's exits
// with their source unchanged.
type Source = anytime.Source

// Sources of readings.
const (
	SourceNVML     Source = "nvml"
	SourceJetson   Source = "jetson-ina3221"
	SourceEstimate Source = "estimate"
	// SourceSim marks a value produced by the deterministic simulator in
	// power/sim; it is never mixed with real readings.
	SourceSim Source = "sim"
	// SourceSysfs marks a value read from a kernel interface other than a
	// power monitor: thermal zones, GPU load.
	SourceSysfs Source = "sysfs"
)
