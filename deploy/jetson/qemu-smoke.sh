#!/usr/bin/env bash
# Runs the cross-compiled arm64 binary under qemu-user with the arm64 CPU
# build of ONNX Runtime: edge probe, then the tiny bundle on its reference
# tensor, compared with the PyTorch reference dumps. Needs Debian's
# qemu-user and gcc-aarch64-linux-gnu (for the arm64 loader and libc).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v qemu-aarch64 >/dev/null || { echo "qemu-smoke: install qemu-user" >&2; exit 1; }
[ -x bin/edge-linux-arm64 ] || make jetson
ORT_ARCH=arm64 scripts/setup-ort.sh
run() { qemu-aarch64 -L /usr/aarch64-linux-gnu bin/edge-linux-arm64 "$@"; }
lib=.deps/arm64/libonnxruntime.so.1
run probe --ort-lib "$lib" --providers cpu
dump=$(mktemp -d)
trap 'rm -rf "$dump"' EXIT
run --log-level error infer --ort-lib "$lib" --providers cpu --threshold 0.8 \
  --tensor testdata/bundles/tiny/reference/x.npy --dump "$dump" --out "$dump/out"
${PYTHON:-/usr/bin/python3} - "$dump" <<'PY'
import sys
import numpy as np
dump, ref = sys.argv[1], "testdata/bundles/tiny/reference"
for k in range(1, 5):
    a, b = np.load(f"{dump}/exit{k}_logits.npy"), np.load(f"{ref}/exit{k}_logits.npy")
    rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    masks = "" if k == 4 else f", mask pixels differing {int((np.load(f'{dump}/exit{k}_mask.npy') != np.load(f'{ref}/exit{k}_mask.npy')).sum())}"
    print(f"exit {k}: relative L2 {rel:.2e} from PyTorch{masks}")
    assert rel < 1e-4, "arm64 result differs from the reference"
PY
