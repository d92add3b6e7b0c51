"""The index tables of a sparse stage (docs/bundle.md, `sparse` mode) built
from an exit mask in numpy: what the Go runtime builds every frame, as an
independent second implementation for tests and the Python bundle runner."""

from __future__ import annotations

from typing import Mapping

import numpy as np


def at_stride(mask: np.ndarray, stride: int, output_stride: int) -> np.ndarray:
    """The exit mask [h, w] nearest-resized (PyTorch's rule for an integer
    ratio r = stride / output_stride: pixel (i, j) takes [r*i, r*j])."""
    if stride % output_stride:
        raise ValueError(f"stride {stride} is not a multiple of the output stride {output_stride}")
    r = stride // output_stride
    return mask[::r, ::r]


def dilate(m: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within Chebyshev distance radius of a set pixel (bool)."""
    out = m.astype(bool)
    h, w = out.shape
    if radius <= 0 or not out.any():
        return out
    padded = np.zeros((h + 2 * radius, w + 2 * radius), bool)
    padded[radius:radius + h, radius:radius + w] = out
    rows = np.zeros_like(padded)
    for d in range(2 * radius + 1):
        rows[:, radius:radius + w] |= padded[:, d:d + w]
    res = np.zeros((h, w), bool)
    for d in range(2 * radius + 1):
        res |= rows[d:d + h, radius:radius + w]
    return res


def tables(mask: np.ndarray, stride: int, output_stride: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, band) of one stride: int64 flat indices, ascending, of the
    computed pixels and of the frozen pixels within `radius` of one."""
    m = at_stride(mask, stride, output_stride).astype(bool)
    index = np.flatnonzero(m).astype(np.int64)
    band = np.flatnonzero(dilate(m, radius) & ~m).astype(np.int64)
    return index, band


def pad(a: np.ndarray, length: int) -> np.ndarray:
    """a padded with -1 to length (the runtime's buckets)."""
    if length < len(a):
        raise ValueError(f"cannot pad {len(a)} entries to {length}")
    return np.concatenate([a, np.full(length - len(a), -1, np.int64)])


def feeds(stage: Mapping, mask: np.ndarray, output_stride: int, extra: int = 0) -> dict[str, np.ndarray]:
    """The index and band inputs of a sparse stage's manifest entry for an
    exit mask, each padded with `extra` entries of -1."""
    bands = stage["sparse"]["bands"]
    out = {}
    for name, src in stage["inputs"].items():
        kind, _, s = src.partition(":")
        if kind not in ("index", "band"):
            continue
        index, band = tables(mask, int(s), output_stride, int(bands[s]))
        a = index if kind == "index" else band
        out[name] = pad(a, len(a) + extra)
    return out
