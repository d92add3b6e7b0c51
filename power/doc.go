// Package power owns what the runtime knows about the device's power and
// heat, and the halting policy that turns it into a per-frame halt point.
//
// The contract between the executor and a halting policy (Progress,
// Decision, the halt Reasons, StageCost) is declared by its consumer,
// package anytime; Policy here implements anytime.Policy and a Recorder is
// an anytime.Meter. Source is anytime.Source, named here because readings
// carry it.
//
// Readings: a Sampler (backends in power/nvml, power/jetson, and the
// Estimator here for hosts with no sensor; power/backend picks one by
// reading a value) produces Readings in which every value carries its
// Source, so an estimate is never passed off as a measurement. A Recorder
// samples one at a fixed rate (20 Hz by default) into a ring buffer,
// integrates energy between any two instants (the hardware counter where
// there is one, else the trapezoid of power), and is the executor's Meter
// and the policy's view of temperature and throttling.
//
// Halting: Policy holds the Limits (deadline, energy budget, power cap over
// a sliding window, maximum exit, thermal soft and hard limits, throttle
// derating) and a CostModel that forecasts each stage's time and energy as
// a function of the active fraction, seeded from the bundle's GMACs and
// learned online. It continues only if the forecast fits every limit.
// Limits may be changed from any goroutine while frames run.
//
// power/sim is a deterministic simulated device on which the policy's
// promises are measured; power/powertest has fakes for consumers' tests.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package power
