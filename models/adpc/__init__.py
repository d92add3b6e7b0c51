"""ADP-C HRNet toolchain: model definition compatible with the official
checkpoints, FLOP counting, a PyTorch reference path and export to bundles
(`anytime-bundle/1`, see docs/bundle.md)."""

VERSION = "0.1.0"
EXPORTER = f"models/adpc {VERSION}"
