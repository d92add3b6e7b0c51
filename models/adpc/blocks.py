"""The cell grid of `blocks` mode (docs/bundle.md): pixel mask -> block mask,
active cell ids padded to a bucket, and the neighbour table, as the Go
runtime computes them.

The exit map (h x w at the output stride) is cut into size x size cells,
numbered row-major 0 .. G-1; G is also the sentinel (a cell of zeros inside
the graphs). A branch at 2^r times the output stride sees size/2^r-pixel
cells, so size must be a multiple of 2^(branches-1) (8 for HRNet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# (row, column) offsets of the eight neighbours, in the contract's order.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
# Cells must stay whole pixels on the coarsest (stride 32) branch.
SIZE_MULTIPLE = 8
DEFAULT_SIZE = 16
# A residual block (two 3x3 convolutions) needs this halo at its resolution.
HALO = 2
# The exporter's default smallest cell (branch pixels) run blockwise.
MIN_CELL = HALO


@dataclass(frozen=True)
class Grid:
    """size x size cells over an h x w exit map."""

    h: int
    w: int
    size: int

    def __post_init__(self) -> None:
        check_size(self.size)
        if self.h % self.size or self.w % self.size:
            raise ValueError(f"the {self.h}x{self.w} exit map is not a whole number of {self.size}-pixel cells")

    @property
    def rows(self) -> int:
        return self.h // self.size

    @property
    def cols(self) -> int:
        return self.w // self.size

    @property
    def cells(self) -> int:
        """G, the number of cells and the sentinel id."""
        return self.rows * self.cols

    def active(self, pixel_mask: np.ndarray) -> np.ndarray:
        """Ascending ids of the cells holding a pixel to compute (mask [h, w] != 0)."""
        m = np.asarray(pixel_mask).reshape(self.rows, self.size, self.cols, self.size)
        return np.flatnonzero(m.any(axis=(1, 3))).astype(np.int64)

    def block_mask(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [1, 1, h, w]: 1 in every pixel of the given cells."""
        cells = np.zeros(self.cells + 1, np.float32)
        cells[np.asarray(ids, np.int64)] = 1
        m = cells[:-1].reshape(self.rows, 1, self.cols, 1)
        m = np.broadcast_to(m, (self.rows, self.size, self.cols, self.size)).reshape(self.h, self.w)
        return np.ascontiguousarray(m)[None, None]

    def inputs(self, ids: Sequence[int], bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """(blocks int64 [bucket], neighbours int64 [bucket, 8]) for the given
        ascending cell ids, padded with the sentinel G."""
        ids = np.asarray(ids, np.int64)
        if len(ids) > bucket:
            raise ValueError(f"{len(ids)} active cells do not fit a bucket of {bucket}")
        g = self.cells
        blocks = np.full(bucket, g, np.int64)
        blocks[:len(ids)] = ids
        neighbours = np.full((bucket, 8), g, np.int64)
        r, c = ids // self.cols, ids % self.cols
        for j, (dr, dc) in enumerate(NEIGHBOUR_OFFSETS):
            nr, nc = r + dr, c + dc
            inside = (nr >= 0) & (nr < self.rows) & (nc >= 0) & (nc < self.cols)
            neighbours[:len(ids), j] = np.where(inside, nr * self.cols + nc, g)
        return blocks, neighbours


def check_size(size: int) -> int:
    if size <= 0 or size % SIZE_MULTIPLE:
        raise ValueError(f"block size {size}: want a positive multiple of {SIZE_MULTIPLE}")
    return size


def bucket_for(count: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= count; ValueError when none is."""
    for b in buckets:
        if b >= count:
            return b
    raise ValueError(f"{count} active cells exceed the largest bucket {max(buckets)}")


def default_buckets(cells: int, first: int = 8) -> list[int]:
    """Powers of two from `first` up to the first one holding every cell."""
    out = [first]
    while out[-1] < cells:
        out.append(out[-1] * 2)
    return out


def widen(pixel_mask: Tensor, size: int) -> Tensor:
    """The block mask of a float pixel mask [N, 1, h, w]: 1 in every pixel of
    a size x size cell holding a 1."""
    cells = F.max_pool2d(pixel_mask, size, size)
    return cells.repeat_interleave(size, dim=2).repeat_interleave(size, dim=3)


def blockwise(cell: int, min_cell: int = HALO) -> bool:
    """Whether a branch with cell-pixel squares runs blockwise in the blocks
    graph: its cells must hold the halo a residual block needs, and be at
    least min_cell pixels (smaller cells recompute too much halo)."""
    return cell >= max(HALO, min_cell)
