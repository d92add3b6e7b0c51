#!/bin/sh
# Regenerates testdata/bundles/tiny-blocks: a 4-stage ADP-C bundle of the
# hrnet_tiny configuration with random weights (seed 1) at 128x256 in blocks
# mode (docs/bundle.md): 8-pixel cells on the 32x64 exit map (a 4x8 grid,
# G = 32), buckets 8,16,32, 19 Cityscapes labels, threshold 0.8. Stage 1 is
# dense; stages 2-4 are blocks stages, each a blocks graph (stageK.onnx) and
# its dense twin (stageK.dense.onnx). Branches with 8-, 4- and 2-pixel cells
# run blockwise, the stride-32 branch (1-pixel cells) densely.
#
# reference/ holds the PyTorch results (block-mask forward) for the Go tests:
#   x.npy                 the input tensor (float32 [1, 3, 128, 256], seed 7)
#   exit{k}_logits.npy    merged logits of exit k (float32 [1, 19, 32, 64])
#   exit{k}_mask.npy      PIXEL mask fed to stage k+1 (uint8 [32, 64], 1 =
#                         compute; cumulative), which the runtime widens to cells
# as written by `models.adpc.infer --mode blocks --block-size 8 --threshold 0.8`.
# On this input 44% / 26% / 17% of the pixels and 25 / 22 / 19 of the 32
# cells are active for stages 2 / 3 / 4.
set -eu
exec "$(dirname "$0")/export_tiny_bundle.sh" testdata/bundles/tiny-blocks tiny-blocks-random 128 256 \
    "--mode blocks --block-size 8 --buckets 8,16,32" "--mode blocks --block-size 8"
