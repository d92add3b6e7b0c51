"""FLOP counting as the paper does it: multiply-accumulates of convolutions,
`weight elements x output H x W` per image; GFLOPs = MACs / 2^30.

Counting runs one dense forward pass with hooks at a reduced resolution and
scales the result: with height and width multiples of 32 every layer's output
size scales exactly, so the count is exact without running the full size.

    python3 -m models.adpc.flops --arch hrnet_w48 --variant rh [--height H --width W] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import torch
from torch import nn

from .config import ARCHS, NUM_EXITS, SIZE_MULTIPLE, VARIANTS, arch, check_size
from .hrnet import EXIT_MODULES, STAGE_MODULES, ADPCHRNet
from .layers import MaskedConv2d

GIGA = 2**30


@dataclass(frozen=True)
class ConvCount:
    """One convolution's dense MACs at the counted input size."""

    name: str
    stage: int  # 1-based stage (= exit) it belongs to
    masked: bool
    macs: int
    out_channels: int
    stride: int  # output stride relative to the input image
    out_h: int
    out_w: int


def _stage_of(name: str) -> int:
    top = name.split(".", 1)[0]
    for k, names in enumerate(STAGE_MODULES, start=1):
        if top in names:
            return k
    raise ValueError(f"convolution {name!r} belongs to no stage")


@torch.no_grad()
def count_convs(model: ADPCHRNet, height: int, width: int) -> list[ConvCount]:
    """Dense MACs of every convolution for one image of height x width."""
    check_size(height, width)
    scale = math.gcd(height // SIZE_MULTIPLE, width // SIZE_MULTIPLE)
    h, w = height // scale, width // scale
    seen: list[tuple[str, nn.Conv2d, int, int]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            def hook(mod: nn.Module, inp, out, name: str = name) -> None:
                seen.append((name, mod, int(out.shape[-2]), int(out.shape[-1])))
            hooks.append(m.register_forward_hook(hook))
    try:
        was_training = model.training
        model.eval()
        x = torch.zeros(1, 3, h, w)
        state, _ = model.stage(1, [x])
        for k in range(2, NUM_EXITS + 1):
            state, _ = model.stage(k, state, None)
        model.train(was_training)
    finally:
        for hk in hooks:
            hk.remove()
    counts = []
    for name, m, oh, ow in seen:
        counts.append(ConvCount(
            name=name, stage=_stage_of(name), masked=isinstance(m, MaskedConv2d),
            macs=m.weight.numel() * oh * ow * scale * scale, out_channels=m.out_channels,
            stride=h // oh, out_h=oh * scale, out_w=ow * scale))
    return counts


@dataclass(frozen=True)
class Report:
    cumulative_macs: list[int]  # forward pass stopped after exit k, all earlier heads included
    base_macs: int  # backbone + final head, without exits 1..3

    @property
    def cumulative_gflops(self) -> list[float]:
        return [m / GIGA for m in self.cumulative_macs]

    @property
    def base_gflops(self) -> float:
        return self.base_macs / GIGA


def report(counts: list[ConvCount]) -> Report:
    per_stage = [sum(c.macs for c in counts if c.stage == k) for k in range(1, NUM_EXITS + 1)]
    cumulative = [sum(per_stage[:k]) for k in range(1, NUM_EXITS + 1)]
    early_heads = sum(c.macs for c in counts if c.name.split(".", 1)[0] in EXIT_MODULES[:-1])
    return Report(cumulative, cumulative[-1] - early_heads)


def stage_macs(counts: list[ConvCount], stage: int) -> dict:
    """The manifest's `macs` object of one stage: fixed MACs, and per output
    stride the dense MACs and summed output channels of the masked convs
    (the MaskedConv2d ones)."""
    fixed = 0
    masked: dict[str, dict[str, int]] = {}
    for c in counts:
        if c.stage != stage:
            continue
        if c.masked:
            m = masked.setdefault(str(c.stride), {"macs": 0, "out_channels": 0})
            m["macs"] += c.macs
            m["out_channels"] += c.out_channels
        else:
            fixed += c.macs
    return {"fixed": fixed, "masked": dict(sorted(masked.items(), key=lambda kv: int(kv[0])))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.flops", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--variant", required=True, choices=VARIANTS)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--json", action="store_true", help='print {"cumulative_gflops":[...],"base_gflops":x}')
    args = p.parse_args(argv)
    try:
        check_size(args.height, args.width)
    except ValueError as e:
        p.error(str(e))
    model = ADPCHRNet(arch(args.arch), args.variant, args.classes)
    r = report(count_convs(model, args.height, args.width))
    if args.json:
        print(json.dumps({"cumulative_gflops": r.cumulative_gflops, "base_gflops": r.base_gflops}))
        return 0
    print(f"{args.arch} {args.variant} at {args.height}x{args.width} (GFLOPs = MACs / 2^30, dense)")
    for k, g in enumerate(r.cumulative_gflops, start=1):
        print(f"exit {k}: {g:8.1f}")
    print(f"mean:   {sum(r.cumulative_gflops) / NUM_EXITS:8.1f}")
    print(f"base:   {r.base_gflops:8.1f}  (backbone + final head)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
