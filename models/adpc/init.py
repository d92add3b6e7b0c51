"""Deterministic random weights for tests, demos and the cross-check.

Each tensor is drawn from a generator seeded by (seed, key), so the ee/rh/adpc
variants built with one seed share the values of their common keys. BatchNorm
statistics are then calibrated on a fixed random image so activations keep a
sane scale, and each exit's last convolution is scaled so its logits have a
set spread (confidences that vary from pixel to pixel).
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .hrnet import EXIT_MODULES, ADPCHRNet
from .layers import MaskedConv2d

CALIBRATION_SIZE = (64, 128)
LOGIT_STD = 4.0


def _generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def random_image(seed: int, height: int, width: int, channels: int = 3) -> Tensor:
    """A normalised-looking image: smooth blobs plus a little fine noise, so
    confident and unconfident pixels form regions."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, channels, max(1, height // 16), max(1, width // 16), generator=g)
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (smooth + 0.3 * torch.randn(1, channels, height, width, generator=g)).float()


@torch.no_grad()
def randomize(model: ADPCHRNet, seed: int) -> ADPCHRNet:
    """Fills model with deterministic random weights and returns it in eval mode."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            g = _generator(seed, name + ".weight")
            module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=_generator(seed, name + ".bias")))
            if isinstance(module, MaskedConv2d):
                u = torch.rand((), generator=_generator(seed, name + ".Lambda"))
                module.Lambda.fill_(float(0.8 + 2.2 * u))
        elif isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.copy_(0.5 + torch.rand(c, generator=_generator(seed, name + ".weight")))
            module.bias.copy_(0.2 * torch.randn(c, generator=_generator(seed, name + ".bias")))
    _calibrate(model, seed)
    return model.eval()


@torch.no_grad()
def _calibrate(model: ADPCHRNet, seed: int) -> None:
    image = random_image(seed, *CALIBRATION_SIZE)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    _run_dense(model, image)
    for m in bns:
        m.momentum = 0.01
    model.eval()
    # Scale each exit's last convolution for a fixed logit spread.
    raw = _run_dense(model, image)
    for name, logits in zip(EXIT_MODULES, raw):
        last = [m for m in getattr(model, name).modules() if isinstance(m, nn.Conv2d)][-1]
        std = float(logits.std())
        if std > 0:
            last.weight.mul_(LOGIT_STD / std)
            last.bias.mul_(LOGIT_STD / std)


def _run_dense(model: ADPCHRNet, image: Tensor) -> list[Tensor]:
    state, logits = model.stage(1, [image])
    raw = [logits]
    for k in range(2, 5):
        state, logits = model.stage(k, state, None)
        raw.append(logits)
    return raw
