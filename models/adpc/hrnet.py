"""HRNet with ADP-C exits, whose state_dict matches the official checkpoints.

The network is run stage by stage (`stage`): stage 1 is the stem, layer1 and
exit 1; stage k > 1 is transition k-1, HRNet stage k and exit k. The branch
tensors are the state carried from one stage to the next.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import NUM_EXITS, ArchConfig, StageConfig, check_variant
from .layers import BasicBlock, Bottleneck, Masks, MaskedSequential, bn, call, conv

# Top-level module names per stage, in execution order (used by FLOP counting
# and export to attribute convolutions to stages).
STAGE_MODULES: tuple[tuple[str, ...], ...] = (
    ("conv1", "bn1", "conv2", "bn2", "layer1", "exit1"),
    ("transition1", "stage2", "exit2"),
    ("transition2", "stage3", "exit3"),
    ("transition3", "stage4", "last_layer"),
)
EXIT_MODULES = ("exit1", "exit2", "exit3", "last_layer")


def upsample(x: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling (align_corners=False) by an integer factor; equal to
    resizing to the target size, and exports as Resize with constant scales."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by an all-to-all fuse."""

    takes_masks = True

    def __init__(self, channels: Sequence[int], blocks: Sequence[int], masked: bool) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            MaskedSequential(*[BasicBlock(channels[i], channels[i], masked) for _ in range(blocks[i])])
            for i in range(n)
        )
        fuse: list[nn.ModuleList] = []
        for i in range(n):
            row: list[Optional[nn.Module]] = []
            for j in range(n):
                if j > i:
                    row.append(MaskedSequential(conv(channels[j], channels[i], 1, masked=masked), bn(channels[i])))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = channels[i] if last else channels[j]
                        step: list[nn.Module] = [conv(channels[j], cout, 3, 2, 1, masked=masked), bn(cout)]
                        if not last:
                            step.append(nn.ReLU())
                        steps.append(MaskedSequential(*step))
                    row.append(MaskedSequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs: list[Tensor], masks: Optional[Masks] = None) -> list[Tensor]:  # type: ignore[override]
        xs = [branch(x, masks) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0], masks)
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + upsample(row[j](xs[j], masks), 2 ** (j - i))
                else:
                    y = y + row[j](xs[j], masks)
            out.append(F.relu(y))
        return out


class HRStage(nn.Sequential):
    """A sequence of HighResolutionModules."""

    takes_masks = True

    def __init__(self, cfg: StageConfig, masked: bool) -> None:
        super().__init__(*[HighResolutionModule(cfg.channels, cfg.blocks, masked) for _ in range(cfg.modules)])

    def forward(self, xs: list[Tensor], masks: Optional[Masks] = None) -> list[Tensor]:  # type: ignore[override]
        for m in self:
            xs = m(xs, masks)
        return xs


def transition(prev: Sequence[int], cur: Sequence[int], masked: bool) -> nn.ModuleList:
    """Adapts the branches of one stage to the next, adding one strided branch."""
    layers: list[Optional[nn.Module]] = []
    for i, cout in enumerate(cur):
        if i < len(prev):
            if cout != prev[i]:
                layers.append(MaskedSequential(conv(prev[i], cout, 3, 1, 1, masked=masked), bn(cout), nn.ReLU()))
            else:
                layers.append(None)
        else:
            steps = []
            for j in range(i + 1 - len(prev)):
                cin = prev[-1]
                c = cout if j == i - len(prev) else cin
                steps.append(MaskedSequential(conv(cin, c, 3, 2, 1, masked=masked), bn(c), nn.ReLU()))
            layers.append(MaskedSequential(*steps))
    return nn.ModuleList(layers)


def original_head(cin: int, classes: int, masked: bool) -> MaskedSequential:
    """The HRNet segmentation head: 1x1 conv, BN, ReLU, 1x1 conv."""
    return MaskedSequential(
        conv(cin, cin, 1, bias=True, masked=masked), bn(cin), nn.ReLU(),
        conv(cin, classes, 1, bias=True, masked=masked),
    )


def redesigned_head(cin: int, width: int, classes: int, pairs: int, masked: bool) -> MaskedSequential:
    """Encoder-decoder of 1x1 convs with `pairs` avg-pool / bilinear-upsample pairs."""
    layers: list[nn.Module] = []
    c = cin
    for _ in range(pairs):
        layers += [nn.AvgPool2d(2, 2), conv(c, width, 1, bias=True, masked=masked), bn(width), nn.ReLU()]
        c = width
    for _ in range(pairs - 1):
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                   conv(width, width, 1, bias=True, masked=masked), bn(width), nn.ReLU()]
    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
               conv(width, classes, 1, bias=True, masked=masked)]
    return MaskedSequential(*layers)


def exit_input(xs: Sequence[Tensor]) -> Tensor:
    """All branches upsampled (bilinear) to the first branch and concatenated."""
    return torch.cat([upsample(x, 2**i) for i, x in enumerate(xs)], dim=1)


class ADPCHRNet(nn.Module):
    """HRNet with four exits; `variant` is ee, rh or adpc (see config)."""

    def __init__(self, cfg: ArchConfig, variant: str, num_classes: int = 19) -> None:
        super().__init__()
        self.cfg = cfg
        self.variant = check_variant(variant)
        self.num_classes = num_classes
        self.masked = variant == "adpc"
        rh = variant != "ee"
        masked = self.masked

        self.conv1 = conv(3, cfg.stem_channels, 3, 2, 1)
        self.bn1 = bn(cfg.stem_channels)
        self.conv2 = conv(cfg.stem_channels, cfg.stem_channels, 3, 2, 1)
        self.bn2 = bn(cfg.stem_channels)
        blocks = [Bottleneck(cfg.stem_channels, cfg.stage1_planes)]
        blocks += [Bottleneck(cfg.stage1_channels, cfg.stage1_planes) for _ in range(cfg.stage1_blocks - 1)]
        self.layer1 = nn.Sequential(*blocks)

        def head(cin: int, pairs: int, masked_head: bool) -> MaskedSequential:
            if rh:
                return redesigned_head(cin, cfg.head_width, num_classes, pairs, masked_head)
            return original_head(cin, num_classes, masked_head)

        self.exit1 = head(cfg.stage1_channels, 3, False)
        s2, s3, s4 = cfg.stages
        self.transition1 = transition([cfg.stage1_channels], s2.channels, masked)
        self.stage2 = HRStage(s2, masked)
        self.exit2 = head(sum(s2.channels), 2, masked)
        self.transition2 = transition(s2.channels, s3.channels, masked)
        self.stage3 = HRStage(s3, masked)
        self.exit3 = head(sum(s3.channels), 1, masked)
        self.transition3 = transition(s3.channels, s4.channels, masked)
        self.stage4 = HRStage(s4, masked)
        self.last_layer = original_head(sum(s4.channels), num_classes, masked)

    def state_counts(self) -> list[int]:
        """Number of state tensors each stage passes on (the last passes none)."""
        return [1] + [s.branches for s in self.cfg.stages[:2]] + [0]

    def input_counts(self) -> list[int]:
        """Number of tensor inputs of each stage, besides the mask."""
        return [1, 1] + [s.branches for s in self.cfg.stages[:2]]

    def stage(self, k: int, inputs: Sequence[Tensor], masks: Optional[Masks] = None) -> tuple[list[Tensor], Tensor]:
        """Runs stage k (1-based) and returns (state, exit k's raw logits).

        Stage 1 takes the image; stage k > 1 takes the state of stage k-1.
        Masks are ignored by a model without masked convolutions.
        """
        if not self.masked:
            masks = None
        if k == 1:
            (x,) = inputs
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            x = self.layer1(x)
            return [x], self.exit1(x)
        if k not in (2, 3, 4):
            raise ValueError(f"stage {k}: want 1..{NUM_EXITS}")
        trans = (self.transition1, self.transition2, self.transition3)[k - 2]
        hrstage = (self.stage2, self.stage3, self.stage4)[k - 2]
        head = (self.exit2, self.exit3, self.last_layer)[k - 2]
        xs = []
        for i, t in enumerate(trans):
            if i < len(inputs):
                xs.append(inputs[i] if t is None else call(t, inputs[i], masks))
            else:
                xs.append(call(t, inputs[-1], masks))
        ys = hrstage(xs, masks)
        logits = head(exit_input(ys), masks)
        return (ys if k < NUM_EXITS else []), logits
