#!/bin/sh
# Regenerates testdata/bundles/tiny: a 4-stage ADP-C bundle of the hrnet_tiny
# configuration with random weights (seed 1) at 64x128, 19 Cityscapes labels,
# confidence threshold 0.8 (about 24% / 44% / 58% of pixels frozen after exits
# 1 / 2 / 3 on the sample input). Stage 1 is dense, stages 2-4 masked.
#
# reference/ holds the PyTorch results for the Go runtime's tests:
#   x.npy                 the input tensor (float32 [1, 3, 64, 128], seed 7)
#   exit{k}_logits.npy    merged logits of exit k (float32 [1, 19, 16, 32])
#   exit{k}_mask.npy      mask fed to stage k+1 (uint8 [16, 32], 1 = compute)
# as written by `models.adpc.infer --threshold 0.8`.
set -eu
exec "$(dirname "$0")/export_tiny_bundle.sh" testdata/bundles/tiny tiny-adpc-random 64 128 "--mode masked"
