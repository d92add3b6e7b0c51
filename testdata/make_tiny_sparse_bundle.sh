#!/bin/sh
# Regenerates testdata/bundles/tiny-sparse: the ADP-C bundle of
# testdata/bundles/tiny (hrnet_tiny, random weights seed 1, 64x128, 19
# Cityscapes labels, threshold 0.8) with stages 2-4 in sparse mode
# (docs/bundle.md): stageK.sparse.onnx, stageK.onnx (masked reference),
# stageK.dense.onnx, weights once in stageK.weights, and the native plan
# stageK.plan.json. --sparse-min-channels 32
# makes the 3x3 convolutions with 32 or more outputs sparse and the narrower
# ones dense, so both kinds are exercised (1x1 convolutions are always sparse);
# --dense-fill-max-pixels 128: dense convolutions fill at the band pixels on the
# stride-4 map and with a depthwise convolution on the smaller ones.
#
# reference/ holds the PyTorch results (the masked forward, which every path
# must reproduce), as written by `models.adpc.infer --threshold 0.8`:
#   x.npy                 the input tensor (float32 [1, 3, 64, 128], seed 7)
#   exit{k}_logits.npy    merged logits of exit k (float32 [1, 19, 16, 32])
#   exit{k}_mask.npy      mask fed to stage k+1 (uint8 [16, 32], 1 = compute)
set -eu
exec "$(dirname "$0")/export_tiny_bundle.sh" testdata/bundles/tiny-sparse tiny-sparse-random 64 128 \
    "--mode sparse --sparse-min-channels 32 --dense-fill-max-pixels 128"
