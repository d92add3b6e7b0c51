#!/bin/sh
# Exports an ADP-C bundle of the hrnet_tiny configuration with random weights
# (seed 1) and confidence threshold 0.8 to OUT (relative to the repository
# root, replaced), and writes its PyTorch reference dumps to OUT/reference:
# x.npy (the seed-7 sample input) and exit{k}_logits.npy / exit{k}_mask.npy as
# `models.adpc.infer --threshold 0.8` writes them. The make_tiny_*bundle.sh
# scripts call it, each with its own mode.
#
# usage: export_tiny_bundle.sh OUT NAME HEIGHT WIDTH 'EXPORT_FLAGS'
# (the flags are split into words: `models.adpc.export` options).
set -eu
PYTHON=${PYTHON:-/usr/bin/python3}
cd "$(dirname "$0")/.."
out=$1 name=$2 height=$3 width=$4 export_flags=$5
rm -rf "$out"
# shellcheck disable=SC2086 # export_flags is a word list
"$PYTHON" -m models.adpc.export --arch hrnet_tiny --variant adpc --seed 1 \
    --height "$height" --width "$width" --threshold 0.8 $export_flags --name "$name" --out "$out"
mkdir -p "$out/reference"
"$PYTHON" -m models.adpc.sample --seed 7 --height "$height" --width "$width" --out "$out/reference/x.npy"
"$PYTHON" -m models.adpc.infer --arch hrnet_tiny --variant adpc --seed 1 \
    --tensor "$out/reference/x.npy" --threshold 0.8 --dump "$out/reference"
