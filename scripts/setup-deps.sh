#!/usr/bin/env bash
# Installs the Debian packages the model toolchain, the broker and video
# tests and the Jetson cross-build need, only those missing
# (non-interactive apt-get; needs root).
set -euo pipefail
packages=(python3-torch python3-onnx python3-numpy python3-pil mosquitto mosquitto-clients dataset-fashion-mnist ffmpeg gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Chromium runs the live view's end-to-end test; without it that test skips.
if [ "${EDGE_SKIP_CHROMIUM:-}" = "" ] && ! command -v chromium >/dev/null; then
  missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "setup-deps: missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
