"""The anytime loop of docs/bundle.md in PyTorch: confidence, masks and copy
aggregation, run stage by stage exactly as the Go runtime does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .hrnet import ADPCHRNet
from .layers import Masks


def max_softmax(logits: Tensor) -> Tensor:
    """Per-pixel confidence [N, 1, h, w]: the largest softmax probability."""
    return torch.softmax(logits, dim=1).max(dim=1, keepdim=True).values


def compute_mask(merged: Tensor, threshold: float) -> Tensor:
    """Float mask [N, 1, h, w]: 1 where conf <= threshold (still to compute)."""
    return (max_softmax(merged) <= threshold).float()


def merge(prev: Tensor, logits: Tensor, mask: Tensor) -> Tensor:
    """Copy aggregation: computed pixels take the new logits, frozen ones keep prev."""
    return torch.where(mask > 0, logits, prev)


@dataclass
class Result:
    """Per-exit results of one image."""

    merged: list[Tensor]  # merged logits of exits 1..K, [N, C, h, w]
    raw: list[Tensor]  # each exit's raw logits
    masks: list[Tensor]  # masks fed to stages 2..K, float [N, 1, h, w]


@torch.no_grad()
def run(model: ADPCHRNet, image: Tensor, threshold: Optional[float], exits: int = 4) -> Result:
    """Runs up to `exits` exits, as the Go executor does.

    A model with masked stages (adpc) follows docs/bundle.md: each mask comes from
    the merged logits (conf <= threshold: compute), gates the next stage's
    masked convolutions and drives the copy aggregation. Stages without masks
    (ee, rh) compute every pixel: their masks are all 1 and the merged logits
    are their own, whatever the threshold. Threshold None: nothing frozen."""
    state, logits = model.stage(1, [image])
    merged, raw, masks = [logits], [logits], []
    for k in range(2, exits + 1):
        if threshold is None or not model.masked:
            mask = torch.ones_like(merged[-1][:, :1])
        else:
            mask = compute_mask(merged[-1], threshold)
        masks.append(mask)
        state, logits = model.stage(k, state, Masks(mask))
        raw.append(logits)
        merged.append(merge(merged[-1], logits, mask))
    return Result(merged, raw, masks)
