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
PYTHON=${PYTHON:-/usr/bin/python3}
cd "$(dirname "$0")/.."
out=testdata/bundles/tiny
rm -rf "$out"
"$PYTHON" -m models.adpc.export --arch hrnet_tiny --variant adpc --seed 1 \
    --height 64 --width 128 --threshold 0.8 --mode masked --name tiny-adpc-random --out "$out"
mkdir -p "$out/reference"
"$PYTHON" -m models.adpc.sample --seed 7 --height 64 --width 128 --out "$out/reference/x.npy"
"$PYTHON" -m models.adpc.infer --arch hrnet_tiny --variant adpc --seed 1 \
    --tensor "$out/reference/x.npy" --threshold 0.8 --dump "$out/reference"
