// Package powertest has fakes for code that consumes the power package: a
// scripted Sampler, a fixed Latest (temperature and throttle), and a Meter
// with a constant power. They hold no hardware and never sleep.
//
// Its place in the tree, and what it may import: docs/architecture.md.
package powertest
