#!/usr/bin/env bash
# Installs the CPU build of ONNX Runtime 1.24.1 under .deps/, taken from the
# npm package onnxruntime-node@1.24.1 and checked against scripts/ort.sha256.
# Idempotent: does nothing when a verified copy is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.24.1
# ORT_ARCH=arm64 fetches the arm64 library too (for the Jetson build under
# qemu); .deps/libonnxruntime.so.1 always points at the host's.
host=$(uname -m)
case "${ORT_ARCH:-$host}" in
  x86_64|amd64|x64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "setup-ort: no CPU build of ONNX Runtime for $(uname -m)" >&2; exit 1 ;;
esac
want=$(awk -v f="$arch/libonnxruntime.so.1" '$2 == f {print $1}' scripts/ort.sha256)
dest=.deps/$arch/libonnxruntime.so.1
link() {
  case "$host" in x86_64) [ "$arch" = x64 ] ;; aarch64) [ "$arch" = arm64 ] ;; *) false ;; esac &&
    ln -sfn "$arch/libonnxruntime.so.1" .deps/libonnxruntime.so.1
  return 0
}
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
  link
  exit 0
fi
command -v npm >/dev/null || { echo "setup-ort: npm is needed to fetch onnxruntime-node@$version (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$version.tgz" -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
got=$(sha256sum "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "setup-ort: sha256 mismatch for $arch/libonnxruntime.so.1: got $got, want $want" >&2
  exit 1
fi
mkdir -p ".deps/$arch"
install -m 0644 "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$dest"
link
echo "setup-ort: installed ONNX Runtime $version ($arch) at $dest"
