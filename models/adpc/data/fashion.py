"""Reading the Fashion-MNIST IDX files shipped by Debian's
`dataset-fashion-mnist` package."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# FASHION_MNIST overrides where the IDX files are (e.g. a copy on a GPU host).
ROOT = Path(os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass(frozen=True)
class Split:
    """One split: uint8 images [N, 28, 28] and labels [N]."""

    images: np.ndarray
    labels: np.ndarray


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load(split: str, root: Path = ROOT) -> Split:
    """Loads the `train` (60,000) or `test` (10,000) split."""
    if split not in FILES:
        raise ValueError(f"split {split!r}: want train or test")
    img, lab = FILES[split]
    try:
        images, labels = _idx(root / img), _idx(root / lab)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e.filename}: install the Debian package dataset-fashion-mnist") from None
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels")
    return Split(images, labels)
