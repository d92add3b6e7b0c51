"""Write a deterministic random input tensor (float32 [1, 3, H, W] .npy) for
tests and cross-checks: smooth blobs plus fine noise, already normalised.

    python3 -m models.adpc.sample --seed 7 --height 64 --width 128 --out x.npy
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

import numpy as np

from .config import check_size
from .init import random_image


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        check_size(args.height, args.width)
    except ValueError as e:
        p.error(str(e))
    np.save(args.out, random_image(args.seed, args.height, args.width).numpy().astype("<f4"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
