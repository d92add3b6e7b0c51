"""Building a model from a checkpoint or from a seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .checkpoint import CheckpointError, load_into, num_classes as classes_of, read
from .config import arch
from .hrnet import ADPCHRNet
from .init import randomize


def build(arch_name: str, variant: str, *, checkpoint: Optional[str | Path] = None,
          seed: Optional[int] = None, num_classes: Optional[int] = None) -> ADPCHRNet:
    """An eval-mode model with weights from exactly one of checkpoint or seed.
    num_classes defaults to the checkpoint's (or 19 for random weights); if
    given with a checkpoint it must agree."""
    if (checkpoint is None) == (seed is None):
        raise ValueError("give exactly one of a checkpoint or a seed")
    if checkpoint is not None:
        sd = read(checkpoint)
        found = classes_of(sd, checkpoint)
        if num_classes is not None and num_classes != found:
            raise ValueError(f"{checkpoint}: has {found} classes, the labels name {num_classes}")
        model = ADPCHRNet(arch(arch_name), variant, found)
        try:
            load_into(model, sd)
        except CheckpointError as e:
            raise CheckpointError(f"{checkpoint}: {e}") from None
        return model.eval()
    model = ADPCHRNet(arch(arch_name), variant, num_classes or 19)
    return randomize(model, int(seed))  # type: ignore[arg-type]


def default_threshold(variant: str) -> float:
    """0.998 (the paper's) for adpc; 1.0 (nothing frozen, the plain
    multi-exit model) for ee and rh."""
    return 0.998 if variant == "adpc" else 1.0


def rh_twin(adpc: ADPCHRNet) -> ADPCHRNet:
    """The rh model holding adpc's weights (its dense twin: the same network
    without masks; the same as build(rh, seed) for a seeded adpc model)."""
    rh = ADPCHRNet(adpc.cfg, "rh", adpc.num_classes)
    keep = rh.state_dict().keys()
    rh.load_state_dict({k: v for k, v in adpc.state_dict().items() if k in keep})
    return rh.eval()
