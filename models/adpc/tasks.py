"""What differs between the two tasks: data, targets, loss, confidence.

Segmentation uses `max_softmax` confidence (frozen when > threshold); pose
uses `heatmap_peak` (frozen when the largest heatmap value over the joints is
<= threshold), as docs/bundle.md specifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import pose, scenes
from .data.fashion import CLASSES
from .hrnet import ADPCHRNet
from .layers import Masks

TASKS = ("seg", "pose")
MEAN = np.array((0.485, 0.456, 0.406), dtype=np.float32)
STD = np.array((0.229, 0.224, 0.225), dtype=np.float32)
POSE_WEIGHT = 10.0


def to_tensor(images: np.ndarray) -> Tensor:
    """uint8 [N, H, W, 3] -> the bundle's normalised float32 [N, 3, H, W]."""
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def confidence_mask(merged: Tensor, task: str, threshold: float) -> Tensor:
    """float [N, 1, h, w], 1 = still to compute, from merged outputs."""
    if task == "seg":
        conf = torch.softmax(merged, dim=1).max(dim=1, keepdim=True).values
        return (conf <= threshold).float()
    peak = merged.max(dim=1, keepdim=True).values
    return (peak > threshold).float()


def forward(model: ADPCHRNet, x: Tensor, task: str, threshold: Optional[float]) -> tuple[list[Tensor], list[Tensor]]:
    """The anytime forward of docs/bundle.md with gradients: (merged outputs per
    exit, masks fed to stages 2..4). threshold None: nothing is frozen."""
    state, logits = model.stage(1, [x])
    merged, masks = [logits], []
    for k in range(2, 5):
        if threshold is None:
            mask = torch.ones_like(merged[-1][:, :1])
        else:
            mask = confidence_mask(merged[-1].detach(), task, threshold)
        masks.append(mask)
        state, logits = model.stage(k, state, Masks(mask))
        merged.append(torch.where(mask > 0, logits, merged[-1]))
    return merged, masks


@dataclass
class Task:
    """Data and loss of one task."""

    name: str
    seed: int

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"task {self.name!r}: want one of {TASKS}")
        self._sets: dict[str, object] = {}

    @property
    def outputs(self) -> int:
        return len(CLASSES) + 1 if self.name == "seg" else len(pose.JOINTS)

    @property
    def size(self) -> tuple[int, int]:
        if self.name == "seg":
            c = scenes.SceneConfig()
            return c.height, c.width
        p = pose.PoseConfig()
        return p.height, p.width

    def dataset(self, split: str):
        if split not in self._sets:
            self._sets[split] = (scenes.SceneSet(split, self.seed) if self.name == "seg"
                                 else pose.PoseSet(split, self.seed))
        return self._sets[split]

    def batch(self, split: str, indices: list[int]) -> tuple[Tensor, Tensor]:
        """(normalised images, targets): labels int64 [N, H, W] or heatmaps [N, 16, h, w]."""
        images, y = self.dataset(split).batch(indices)
        if self.name == "seg":
            return to_tensor(images), torch.from_numpy(y.astype(np.int64))
        h, w = self.size
        return to_tensor(images), torch.from_numpy(np.stack([pose.heatmaps(j, h, w) for j in y]))

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        """One exit's loss: cross-entropy on logits upsampled to the label size
        (ignore label 255), or heatmap mean squared error (x1000) weighted by
        1 + POSE_WEIGHT x target, so the few cells near joints are not drowned
        out by the background."""
        if self.name == "seg":
            up = F.interpolate(out, size=target.shape[-2:], mode="bilinear", align_corners=False)
            return F.cross_entropy(up, target, ignore_index=scenes.IGNORE)
        return 1000.0 * torch.mean((1.0 + POSE_WEIGHT * target) * (out - target) ** 2)
