#!/usr/bin/env bash
# Installs anytime-edge on a Jetson (JetPack 6): the binary, the default
# bundle, the ONNX Runtime GPU library, the systemd unit and its environment
# file; then prebuilds every stage's TensorRT engine so the first frame does
# not wait minutes. Run as root from an unpacked release:
#   sudo deploy/jetson/install.sh bin/edge-linux-arm64 models/zoo/<bundle> /path/to/libonnxruntime.so.1
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ $# -eq 3 ] || { echo "usage: install.sh EDGE_BINARY BUNDLE_DIR LIBONNXRUNTIME" >&2; exit 2; }
binary=$1 bundle=$2 ortlib=$3
here=$(cd "$(dirname "$0")" && pwd)
[ -f /etc/nv_tegra_release ] || echo "install.sh: warning: /etc/nv_tegra_release is missing; this does not look like a Jetson" >&2
[ -f "$bundle/bundle.json" ] || { echo "install.sh: $bundle has no bundle.json" >&2; exit 1; }

id anytime-edge >/dev/null 2>&1 || useradd --system --home-dir /var/lib/anytime-edge --shell /usr/sbin/nologin anytime-edge
usermod -a -G video anytime-edge
getent group render >/dev/null && usermod -a -G render anytime-edge

install -d /opt/anytime-edge/bin /opt/anytime-edge/lib /opt/anytime-edge/models /etc/anytime-edge
install -m 0755 "$binary" /opt/anytime-edge/bin/edge
install -m 0644 "$ortlib" /opt/anytime-edge/lib/libonnxruntime.so.1
rm -rf /opt/anytime-edge/models/default
cp -r "$bundle" /opt/anytime-edge/models/default
[ -f /etc/anytime-edge/edge.env ] || install -m 0640 -g anytime-edge "$here/edge.env" /etc/anytime-edge/edge.env
install -m 0644 "$here/anytime-edge.service" /etc/systemd/system/anytime-edge.service
install -d -o anytime-edge -g anytime-edge /var/cache/anytime-edge/trt /var/lib/anytime-edge/spool

echo "install.sh: building TensorRT engines (minutes per stage on first install)"
sudo -u anytime-edge env $(grep -v '^#' /etc/anytime-edge/edge.env | xargs) \
  /opt/anytime-edge/bin/edge engines build --providers tensorrt

systemctl daemon-reload
systemctl enable --now anytime-edge.service
echo "install.sh: done; follow it with: journalctl -u anytime-edge -f"
