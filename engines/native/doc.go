// Package native runs a sparse ADP-C stage exactly on the CPU through fused
// channels-last C kernels instead of ONNX Runtime: every masked convolution is
// computed only at the pixels its mask keeps, the RBF fill only at the frozen
// pixels near them (the band), and the BatchNorm shift of far pixels, the
// residual add and ReLU in one epilogue pass. It computes what the stage's
// masked graph computes (docs/bundle.md, "sparse" mode), at every pixel.
//
// A stage is described by a plan, stageK.plan.json, that the exporter writes
// next to the stage's weights file: format "adpc-plan/1"; "weights", the
// weights file (float32 little-endian) next to the plan; "inputs", "state"
// and "logits", the tensors holding the stage's state inputs and outputs and
// the exit's logits (NCHW at the boundary); "tensors", every tensor's
// channels and stride (its map is H/stride × W/stride × channels); "ops", in
// execution order, each writing one new tensor:
//
//   - conv: kernel 1 or 3 (padding kernel/2), stride 1 or 2, weight [Cout,
//     Cin, k, k], optional bias and BatchNorm (gamma, beta, mean, var, eps),
//     the RBF fill taps [[dy, dx, w], ...], an optional residual and ReLU.
//     With m the mask at the output's stride: y = conv(x) + bias, z = y·m +
//     fill(y·m)·(1−m), then BN, + residual, ReLU.
//   - sum: bilinear-upsampled terms (align_corners=False) added, then ReLU.
//   - concat: upsampled terms concatenated along channels.
//   - avgpool: 2×2, stride 2.
//
// A weight is {"offset": bytes, "shape": [...]} in the weights file or
// {"values": [...], "shape": [...]} inline.
//
// Load parses and validates a plan, packs the weights once (BatchNorm folded
// into each convolution's scale and bias) and allocates every buffer, tensors
// whose lives do not overlap sharing one. Stage.Run executes one frame from
// the runtime's index and band tables without allocating, splitting each
// operation across a fixed pool of worker goroutines. Stages that run one
// after another (a bundle's, in one engine) share their buffers and workers
// through a Shared: their buffer memory is then the largest stage's, not the
// sum (HRNet-W48 at 512×1024: 216 MiB instead of 355).
//
// The kernels (kernels.go) and the executor need cgo; without it Load returns
// ErrUnavailable.
package native
