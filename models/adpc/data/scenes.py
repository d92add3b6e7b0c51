"""Segmentation scenes: Fashion-MNIST items scaled, tinted and overlapping
over structured backgrounds (large smooth regions, gradients, stripes and
checks, noise patches), with per-pixel labels.

Labels: 0..9 are the Fashion-MNIST classes, 10 is background and 255
(IGNORE) marks the anti-aliased rim of an item, where the item's alpha is
between RIM_LOW and RIM_HIGH. Items of the `test` scenes come only from the
dataset's test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .fashion import CLASSES, Split, load

BACKGROUND = len(CLASSES)
IGNORE = 255
RIM_LOW, RIM_HIGH = 0.15, 0.5
# Colours of the label maps: ten garment colours and dark grey background.
COLORS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
          (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
          (40, 40, 40))
SPLIT_SALT = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SceneConfig:
    """Canvas size and item statistics."""

    height: int = 128
    width: int = 256
    min_items: int = 1
    max_items: int = 7
    min_scale: float = 2.0  # item side = 28 x scale pixels
    max_scale: float = 3.5


def rng_for(seed: int, split: str, index: int, salt: int = 0) -> np.random.Generator:
    """The generator of one sample: a pure function of its coordinates."""
    return np.random.default_rng([seed, SPLIT_SALT[split], index, salt])


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, size=3)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """float32 [h, w, 3] in [0, 1]: a gradient, a few large flat regions split
    by straight edges, one textured patch and one noise patch."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = (1 - t)[..., None] * _colour(rng) + t[..., None] * _colour(rng)
    for _ in range(rng.integers(1, 4)):  # large smooth regions (road, sky, walls)
        a = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(-0.3, 0.3)
        side = (np.cos(a) * (xx / w - 0.5) + np.sin(a) * (yy / h - 0.5)) > off
        img[side] = 0.25 * img[side] + 0.75 * _colour(rng)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    y1, x1 = y0 + rng.integers(h // 4, h // 2 + 1), x0 + rng.integers(w // 6, w // 2 + 1)
    kind = rng.integers(0, 3)
    period = rng.uniform(3, 12)
    if kind == 0:
        pat = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif kind == 1:
        p = int(period)
        pat = (((yy // p) + (xx // p)) % 2).astype(np.float32)
    else:
        pat = 0.5 + 0.5 * np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    c1, c2 = _colour(rng), _colour(rng)
    patch = (1 - pat)[..., None] * c1 + pat[..., None] * c2
    img[y0:y1, x0:x1] = patch[y0:y1, x0:x1]
    y0, x0 = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
    y1, x1 = y0 + rng.integers(h // 8, h // 3 + 1), x0 + rng.integers(w // 8, w // 3 + 1)
    img[y0:y1, x0:x1] += rng.normal(0, rng.uniform(0.05, 0.25), size=img[y0:y1, x0:x1].shape)
    img += rng.normal(0, 0.01, size=img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def resize(item: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (half-pixel centres) of a square [28, 28] float array."""
    n = item.shape[0]
    c = (np.arange(size, dtype=np.float32) + 0.5) * n / size - 0.5
    c = np.clip(c, 0, n - 1)
    i0 = np.floor(c).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (c - i0)[:, None]
    rows = item[i0] * (1 - f) + item[i1] * f
    return rows[:, i0] * (1 - f.T) + rows[:, i1] * f.T


def paste(img: np.ndarray, labels: Optional[np.ndarray], grey: np.ndarray, cls: int,
          top: int, left: int, tint: np.ndarray, shade: float) -> None:
    """Composites one item (grey float [s, s] in [0, 1]) at (top, left), clipped
    to the canvas; alpha follows the item's brightness."""
    h, w = img.shape[:2]
    s = grey.shape[0]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + s, h), min(left + s, w)
    if y0 >= y1 or x0 >= x1:
        return
    g = grey[y0 - top:y1 - top, x0 - left:x1 - left]
    alpha = np.clip(g * 3.0, 0, 1)[..., None]
    colour = tint * (shade + (1 - shade) * g[..., None])
    img[y0:y1, x0:x1] = alpha * colour + (1 - alpha) * img[y0:y1, x0:x1]
    if labels is not None:
        a = alpha[..., 0]
        region = labels[y0:y1, x0:x1]
        region[a >= RIM_HIGH] = cls
        region[(a > RIM_LOW) & (a < RIM_HIGH)] = IGNORE


@dataclass
class SplitSet:
    """Synthetic images made from one split of the garment images, each a
    pure function of (seed, split, index); `items`, the split's images, are
    loaded when not given."""

    split: str
    seed: int
    items: Optional[Split] = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.items is None:
            self.items = load(self.split)


@dataclass
class SceneSet(SplitSet):
    """Scenes of one split; `scene(i)` is deterministic in (seed, split, i)."""

    cfg: SceneConfig = SceneConfig()

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 RGB [H, W, 3], uint8 labels [H, W])."""
        cfg = self.cfg
        rng = rng_for(self.seed, self.split, index)
        img = background(rng, cfg.height, cfg.width)
        labels = np.full((cfg.height, cfg.width), BACKGROUND, dtype=np.uint8)
        assert self.items is not None
        for _ in range(rng.integers(cfg.min_items, cfg.max_items + 1)):
            k = int(rng.integers(0, len(self.items.labels)))
            size = int(round(28 * rng.uniform(cfg.min_scale, cfg.max_scale)))
            grey = resize(self.items.images[k].astype(np.float32) / 255.0, size)
            if rng.random() < 0.5:
                grey = grey[:, ::-1]
            top = int(rng.integers(-size // 4, cfg.height - 3 * size // 4))
            left = int(rng.integers(-size // 4, cfg.width - 3 * size // 4))
            paste(img, labels, grey, int(self.items.labels[k]), top, left, _colour(rng), rng.uniform(0.2, 0.6))
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), labels

    def batch(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.scene(i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
