"""The anytime loop of docs/bundle.md in PyTorch: confidence, masks and copy
aggregation, run stage by stage exactly as the Go runtime does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from . import blocks
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


@torch.no_grad()
def run_blocks(model: ADPCHRNet, image: Tensor, threshold: Optional[float], size: int, exits: int = 4) -> Result:
    """The anytime loop in blocks mode (docs/bundle.md), as the Go executor
    runs a bundle of blocks stages: the pixel mask is cumulative (a pixel
    frozen once stays frozen: mask_k = mask_{k-1} and conf <= threshold), the
    stage computes the block mask (the pixel mask widened to size x size
    cells) with the residual blocks gated and everything else dense, and
    copy aggregation uses the block mask. `masks` holds the pixel masks.
    Threshold None: nothing frozen."""
    state, logits = model.stage(1, [image])
    merged, raw, masks = [logits], [logits], []
    pixel = torch.ones_like(logits[:, :1])
    for k in range(2, exits + 1):
        if threshold is not None:
            pixel = pixel * compute_mask(merged[-1], threshold)
        masks.append(pixel)
        block = blocks.widen(pixel, size)
        state, logits = model.stage(k, state, gate=Masks(block))
        raw.append(logits)
        merged.append(merge(merged[-1], logits, block))
    return Result(merged, raw, masks)
