"""PyTorch reference path: run a model on one input tensor and dump every
exit the way `edge infer --dump` does.

    python3 -m models.adpc.infer --arch A --variant V (--checkpoint FILE | --seed N) \
        --tensor x.npy [--threshold T] --dump DIR

Writes DIR/exit{k}_logits.npy (merged logits after copy aggregation, float32
[1, C, h, w]) for k = 1..4 and DIR/exit{k}_mask.npy (uint8 [h, w], the mask
fed to stage k+1, 1 = compute) for k = 1..3. The input is the preprocessed
float32 [1, 3, H, W] tensor (see the bundle's `input`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import anytime
from .build import build, default_threshold
from .checkpoint import CheckpointError
from .config import ARCHS, VARIANTS, check_size
from .hrnet import ADPCHRNet
from .labels import load as load_labels


def load_tensor(path: str | Path) -> torch.Tensor:
    x = np.load(str(path), allow_pickle=False)
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"{path}: shape {list(x.shape)}, want [1, 3, H, W]")
    check_size(x.shape[2], x.shape[3])
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def dump(result: anytime.Result, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, merged in enumerate(result.merged, start=1):
        np.save(out / f"exit{k}_logits.npy", merged.numpy().astype("<f4"))
    for k, mask in enumerate(result.masks, start=1):
        np.save(out / f"exit{k}_mask.npy", mask[0, 0].numpy().astype(np.uint8))


def infer(model: ADPCHRNet, x: torch.Tensor, threshold: float, out: Optional[str | Path] = None) -> anytime.Result:
    """The anytime loop, dumped to out."""
    r = anytime.run(model.eval(), x, threshold)
    if out is not None:
        dump(r, out)
    return r


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.infer", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--variant", required=True, choices=VARIANTS)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint")
    src.add_argument("--seed", type=int)
    p.add_argument("--classes", default="cityscapes", help="cityscapes or a labels file (number of classes)")
    p.add_argument("--tensor", required=True, help="float32 [1, 3, H, W] .npy")
    p.add_argument("--threshold", type=float, help="default 0.998 for adpc, 1.0 for ee/rh")
    p.add_argument("--dump", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    try:
        x = load_tensor(args.tensor)
        n = None if args.checkpoint else len(load_labels(args.classes))
        model = build(args.arch, args.variant, checkpoint=args.checkpoint, seed=args.seed, num_classes=n)
    except (ValueError, OSError, CheckpointError) as e:
        print(f"infer: {e}", file=sys.stderr)
        return 2
    t = default_threshold(args.variant) if args.threshold is None else args.threshold
    r = infer(model, x, t, args.dump)
    for k, m in enumerate(r.masks, start=1):
        print(f"exit {k}: {100 * (1 - float(m.mean())):.1f}% of pixels frozen")
    return 0


if __name__ == "__main__":
    sys.exit(main())
