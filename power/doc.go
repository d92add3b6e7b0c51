// Package power owns what the runtime knows about the device's power and
// heat, and the halting policy that turns it into a per-frame halt point.
//
// The types in halt.go are the contract between the anytime executor and any
// halting policy: the executor describes the frame's progress before each
// stage, the policy answers continue or halt with a reason, and the executor
// reports what each stage actually cost.
package power
