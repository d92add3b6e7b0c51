"""Loading official (or our own) checkpoints into ADPCHRNet."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch

from .hrnet import ADPCHRNet

PREFIXES = ("module.", "model.")
SHOW = 5


class CheckpointError(ValueError):
    """The checkpoint does not fit the model."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a plain state dict or of a dict holding `state_dict`
    (or `model`), with `module.` / `model.` prefixes removed. The training
    wrapper of the HRNet segmentation code saves its loss too
    (`loss.criterion.weight`, the class weights): `loss.` keys are dropped."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint is a {type(obj).__name__}, want a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError("checkpoint holds no tensors")
    changed = True
    while changed:  # e.g. DataParallel around a wrapper: module.model.conv1...
        changed = False
        if any(k.startswith("loss.") for k in sd) and not all(k.startswith("loss.") for k in sd):
            sd = {k: v for k, v in sd.items() if not k.startswith("loss.")}
        for p in PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def _listing(what: str, items: list[str]) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > SHOW else f" ({len(items)})"
    return f"{what}: " + ", ".join(items[:SHOW]) + more


def load_into(model: ADPCHRNet, sd: Mapping[str, torch.Tensor]) -> None:
    """Copies sd into model, requiring the same keys and shapes; raises
    CheckpointError listing the missing, unexpected and mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [f"{k} {list(sd[k].shape)} vs model {list(own[k].shape)}"
                  for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = [_listing(w, l) for w, l in (("missing", missing), ("unexpected", unexpected),
                                              ("shape mismatch", mismatched)) if l]
        raise CheckpointError(
            f"checkpoint does not fit {model.cfg.name} {model.variant} ({model.num_classes} classes): "
            + "; ".join(parts))
    model.load_state_dict(dict(sd), strict=True)


def read(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (see extract_state_dict)."""
    try:
        return extract_state_dict(torch.load(str(path), map_location="cpu"))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_file(model: ADPCHRNet, path: str | Path) -> None:
    sd = read(path)
    try:
        load_into(model, sd)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def num_classes(sd: Mapping[str, torch.Tensor], path: str | Path = "checkpoint") -> int:
    """Number of classes (output channels of last_layer)."""
    w = sd.get("last_layer.3.weight")
    if w is None:
        raise CheckpointError(f"{path}: no last_layer.3.weight, not an HRNet segmentation checkpoint")
    return int(w.shape[0])
