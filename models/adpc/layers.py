"""Building blocks: masked convolutions with the RBF fill, mask-aware
sequences and the HRNet residual blocks.

Masks travel as an argument (`Masks`), built for one forward pass from that
pass's tensors; no module keeps a mask or a size between calls.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RBF_SIZE = 7
RBF_INIT_LAMBDA = 3.0
BN_MOMENTUM = 0.01


class Masks:
    """The compute mask of one forward pass at every resolution it is asked for.

    ``full`` is float [N, 1, h, w] (1 = compute, 0 = frozen) at the exits'
    resolution. ``at(h, w)`` resizes it with nearest-neighbour (PyTorch's
    default ``F.interpolate`` mode, as the reference does), once per size.
    """

    def __init__(self, full: Tensor) -> None:
        self.full = full
        self._sized: dict[tuple[int, int], Tensor] = {}

    def at(self, h: int, w: int) -> Tensor:
        key = (int(h), int(w))
        m = self._sized.get(key)
        if m is None:
            fh, fw = int(self.full.shape[-2]), int(self.full.shape[-1])
            if key == (fh, fw):
                m = self.full
            elif fh % key[0] == 0 and fw % key[1] == 0:
                # Nearest with an integer ratio r picks source index r*i.
                m = self.full[:, :, :: fh // key[0], :: fw // key[1]]
            else:
                m = F.interpolate(self.full, size=key, mode="nearest")
            self._sized[key] = m
        return m


def square_distances(size: int = RBF_SIZE) -> Tensor:
    """Squared distance of each kernel tap from the centre; the centre itself
    is 1e5 so its RBF weight vanishes."""
    c = size // 2
    idx = torch.arange(size, dtype=torch.float32) - c
    d = idx[:, None] ** 2 + idx[None, :] ** 2
    d[c, c] = 100000.0
    return d


class MaskedConv2d(nn.Conv2d):
    """A convolution whose frozen outputs are replaced by an RBF-weighted
    average of the computed neighbours (7x7 window, centre excluded, weights
    exp(-lambda^2 d^2) normalised over the whole window, lambda learned).

    Computed positions equal the plain convolution exactly. Without masks it
    is a plain convolution.
    """

    takes_masks = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.Lambda = nn.Parameter(torch.tensor(RBF_INIT_LAMBDA))
        self.register_buffer("square_dis", square_distances())

    def rbf_kernel(self) -> Tensor:
        k = torch.exp(-(self.Lambda**2) * self.square_dis)
        return k / (k.sum() + 1e-5)

    def forward(self, x: Tensor, masks: Optional[Masks] = None) -> Tensor:  # type: ignore[override]
        y = super().forward(x)
        if masks is None:
            return y
        m = masks.at(y.shape[-2], y.shape[-1])
        c = self.out_channels
        kernel = self.rbf_kernel().expand(c, 1, RBF_SIZE, RBF_SIZE)
        fill = F.conv2d(y * m, kernel, padding=RBF_SIZE // 2, groups=c)
        return y * m + fill * (1 - m)


def call(layer: nn.Module, x: Tensor, masks: Optional[Masks]) -> Tensor:
    """Calls layer, passing the masks only to layers that take them."""
    if getattr(layer, "takes_masks", False):
        return layer(x, masks)
    return layer(x)


class MaskedSequential(nn.Sequential):
    """nn.Sequential that hands the masks to the layers that take them."""

    takes_masks = True

    def forward(self, x: Tensor, masks: Optional[Masks] = None) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = call(layer, x, masks)
        return x


def conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
         bias: bool = False, masked: bool = False) -> nn.Conv2d:
    cls = MaskedConv2d if masked else nn.Conv2d
    return cls(cin, cout, kernel_size=kernel, stride=stride, padding=padding, bias=bias)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (HRNet branches)."""

    takes_masks = True
    expansion = 1

    def __init__(self, inplanes: int, planes: int, masked: bool) -> None:
        super().__init__()
        self.conv1 = conv(inplanes, planes, 3, padding=1, masked=masked)
        self.bn1 = bn(planes)
        self.conv2 = conv(planes, planes, 3, padding=1, masked=masked)
        self.bn2 = bn(planes)

    def forward(self, x: Tensor, masks: Optional[Masks] = None) -> Tensor:
        out = F.relu(self.bn1(call(self.conv1, x, masks)))
        out = self.bn2(call(self.conv2, out, masks))
        return F.relu(out + x)


class Bottleneck(nn.Module):
    """1x1, 3x3, 1x1 convolutions with expansion 4 (HRNet stage 1, never masked)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = conv(inplanes, planes, 1)
        self.bn1 = bn(planes)
        self.conv2 = conv(planes, planes, 3, padding=1)
        self.bn2 = bn(planes)
        self.conv3 = conv(planes, out, 1)
        self.bn3 = bn(out)
        self.downsample: Optional[nn.Sequential] = None
        if inplanes != out:
            self.downsample = nn.Sequential(conv(inplanes, out, 1), bn(out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)
