"""Architecture configurations and variants.

A configuration fixes the widths and depths of the HRNet; a variant fixes the
exit heads and whether the convolutions after exit 1 are masked:

- ``ee``: every exit uses the original HRNet head (1x1 conv, BN, ReLU, 1x1 conv).
- ``rh``: exits 1-3 use the redesigned encoder-decoder heads, exit 4 the original.
- ``adpc``: ``rh`` plus confidence masks with the learned RBF fill.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("ee", "rh", "adpc")


@dataclass(frozen=True)
class StageConfig:
    """One HRNet stage of BasicBlock branches."""

    modules: int
    blocks: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def branches(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class ArchConfig:
    """Widths and depths of an ADP-C HRNet."""

    name: str
    stem_channels: int
    stage1_blocks: int
    stage1_planes: int  # Bottleneck planes; output channels are 4x this.
    stages: tuple[StageConfig, StageConfig, StageConfig]  # stages 2, 3, 4
    head_width: int  # intermediate width of the redesigned heads

    @property
    def stage1_channels(self) -> int:
        return 4 * self.stage1_planes


def hrnet(name: str, *, width: int, blocks: int, modules: tuple[int, int, int], stem_channels: int,
          stage1_blocks: int, stage1_planes: int, head_width: int) -> ArchConfig:
    """An HRNet of the usual shape: stage k (2-4) has k branches of `blocks`
    BasicBlocks each, of widths width, 2·width, 4·width, …, in modules[k-2]
    modules."""
    stages = tuple(StageConfig(m, (blocks,) * n, tuple(width << b for b in range(n)))
                   for n, m in zip((2, 3, 4), modules))
    return ArchConfig(name=name, stem_channels=stem_channels, stage1_blocks=stage1_blocks,
                      stage1_planes=stage1_planes, stages=stages, head_width=head_width)


ARCHS: dict[str, ArchConfig] = {
    "hrnet_w48": hrnet("hrnet_w48", width=48, blocks=4, modules=(1, 4, 3), stem_channels=64,
                       stage1_blocks=4, stage1_planes=64, head_width=128),
    "hrnet_w18_small_v2": hrnet("hrnet_w18_small_v2", width=18, blocks=2, modules=(1, 3, 2), stem_channels=64,
                                stage1_blocks=2, stage1_planes=64, head_width=64),
    # Small enough for CPU training and for the Go test bundle.
    "hrnet_tiny": hrnet("hrnet_tiny", width=8, blocks=1, modules=(1, 1, 1), stem_channels=16,
                        stage1_blocks=1, stage1_planes=8, head_width=16),
}

# Exits attach after layer1 and after stages 2, 3 and 4; all run at stride 4.
NUM_EXITS = 4
OUTPUT_STRIDE = 4
# Input height and width must be multiples of this (exit 1 pools to 1/32).
SIZE_MULTIPLE = 32


def arch(name: str) -> ArchConfig:
    """Returns the named configuration or raises ValueError listing the known ones."""
    try:
        return ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}, want one of {sorted(ARCHS)}") from None


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}, want one of {list(VARIANTS)}")
    return variant


def check_size(height: int, width: int) -> None:
    """Raises ValueError unless both sides are positive multiples of 32."""
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"input size {height}x{width}: height and width must be positive multiples of {SIZE_MULTIPLE}"
        )
