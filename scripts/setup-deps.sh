#!/usr/bin/env bash
# Installs the Debian packages the model toolchain, the broker and video
# tests, the metrics lint (promtool, from prometheus) and the Jetson
# cross-build need, only those missing
# (non-interactive apt-get; needs root). Chromium, for the live view's
# end-to-end test, is optional: if it cannot be installed that test skips.
set -euo pipefail
packages=(python3-torch python3-onnx python3-numpy python3-pil mosquitto mosquitto-clients dataset-fashion-mnist ffmpeg prometheus gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
want_chromium=
if [ "${EDGE_SKIP_CHROMIUM:-}" = "" ] && ! command -v chromium >/dev/null; then
  want_chromium=1
fi
[ ${#missing[@]} -eq 0 ] && [ -z "$want_chromium" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  [ ${#missing[@]} -eq 0 ] && { echo "setup-deps: chromium is missing; the live-view end-to-end test will skip" >&2; exit 0; }
  echo "setup-deps: missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ -n "$want_chromium" ]; then
  echo "setup-deps: installing chromium (optional)"
  apt-get install -y -q --no-install-recommends chromium ||
    echo "setup-deps: chromium could not be installed; the live-view end-to-end test will skip" >&2
fi
