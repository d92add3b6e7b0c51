"""Per-exit accuracy and effective compute on the held-out test split.

Segmentation: mIoU over the 11 classes (10 garments + background), from one
confusion matrix over all scenes, computed at the output stride: the
prediction is the arg-max of the merged logits ([h, w] = [H/4, W/4]) and the
ground truth is the label at the centre of each 4x4 cell (row 4i+2, column
4j+2); IGNORE cells are left out. Pose: PCKh@0.5 over all joints of all
figures, keypoints decoded from the merged heatmaps (data.pose.decode).

Compute: cumulative effective GMACs per exit (docs/bundle.md; GFLOPs as the paper
counts them = MACs / 2^30), averaged over the images.

    /usr/bin/python3 -m models.adpc.evaluate --task seg|pose --variant rh|adpc \
        --checkpoint FILE [--thresholds 0.9,0.99] [--n 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .config import NUM_EXITS, OUTPUT_STRIDE, arch
from .flops import GIGA, count_convs, stage_macs
from .hrnet import ADPCHRNet
from .checkpoint import load_file
from .data import pose, scenes
from .tasks import TASKS, Task, forward, to_tensor

SEED = 1
TEST_SCENES = 200


@dataclass
class ExitResult:
    exit: int
    accuracy: float  # mIoU or PCKh@0.5, in percent
    gmacs: float  # cumulative effective GMACs (MACs / 2^30), mean per image
    computed: float  # mean fraction of output-stride pixels computed by this stage


@dataclass
class Evaluation:
    task: str
    variant: str
    threshold: Optional[float]
    images: int
    exits: list[ExitResult]


def centre_labels(labels: np.ndarray, stride: int = OUTPUT_STRIDE) -> np.ndarray:
    """Ground truth at the output stride: the label at each cell's centre."""
    c = stride // 2
    return labels[..., c::stride, c::stride]


def confusion(pred: np.ndarray, gt: np.ndarray, classes: int) -> np.ndarray:
    keep = gt != scenes.IGNORE
    idx = gt[keep].astype(np.int64) * classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=classes * classes).reshape(classes, classes)


def miou(conf: np.ndarray) -> float:
    """Mean IoU in percent over the classes present in prediction or truth."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return float(100 * np.mean(tp[present] / union[present]))


class MACCounter:
    """Effective MACs of one image from the masks fed to stages 2..4."""

    def __init__(self, model: ADPCHRNet, height: int, width: int) -> None:
        counts = count_convs(model, height, width)
        self.stages = [stage_macs(counts, k) for k in range(1, NUM_EXITS + 1)]
        self.height, self.width = height, width

    def per_stage(self, masks: Sequence[Optional[np.ndarray]]) -> list[float]:
        """masks[k] is the [h, w] mask of stage k+1 (None: dense)."""
        out = []
        for k, st in enumerate(self.stages):
            total = float(st["fixed"])
            mask = masks[k - 1] if k > 0 else None
            for stride, m in st["masked"].items():
                r = int(stride)
                if mask is None:
                    p = 1.0
                else:
                    step = r // OUTPUT_STRIDE
                    p = float(mask[::step, ::step].mean())
                hw = (self.height // r) * (self.width // r)
                total += m["macs"] * p + (1 - p) * p * m["out_channels"] * 49 * hw
            out.append(total)
        return out


@torch.no_grad()
def evaluate(model: ADPCHRNet, task: Task, threshold: Optional[float], n: int = TEST_SCENES,
             batch: int = 20, first: int = 0) -> tuple[Evaluation, dict]:
    """Evaluates test images first..first+n-1; also returns per-image raw
    material (predicted labels or keypoints per exit) for the Go test set."""
    model.eval()
    h, w = task.size
    counter = MACCounter(model, h, w)
    classes = task.outputs
    confs = [np.zeros((classes, classes), np.int64) for _ in range(NUM_EXITS)]
    correct = np.zeros(NUM_EXITS)
    joints_total = 0
    macs = np.zeros(NUM_EXITS)
    computed = np.zeros(NUM_EXITS)
    per_image: dict = {"pred": [[] for _ in range(NUM_EXITS)]}
    for b0 in range(first, first + n, batch):
        idx = list(range(b0, min(b0 + batch, first + n)))
        ds = task.dataset("test")
        images, y = ds.batch(idx)
        x = to_tensor(images)
        merged, masks = forward(model, x, task.name, threshold)
        for i in range(len(idx)):
            ms = [None if threshold is None else masks[k][i, 0].numpy() for k in range(NUM_EXITS - 1)]
            stage = counter.per_stage(ms)
            macs += np.cumsum(stage)
            computed += [1.0] + [1.0 if m is None else float(m.mean()) for m in ms]
            for k in range(NUM_EXITS):
                out = merged[k][i].numpy()
                if task.name == "seg":
                    pred = out.argmax(0).astype(np.uint8)
                    confs[k] += confusion(pred, centre_labels(y[i]), classes)
                    per_image["pred"][k].append(pred)
                else:
                    kp = pose.decode(out)
                    correct[k] += pose.pckh(kp, y[i]).sum()
                    per_image["pred"][k].append(kp)
            if task.name == "pose":
                joints_total += len(pose.JOINTS)
    exits = []
    for k in range(NUM_EXITS):
        acc = miou(confs[k]) if task.name == "seg" else float(100 * correct[k] / joints_total)
        exits.append(ExitResult(k + 1, acc, float(macs[k] / n / GIGA), float(computed[k] / n)))
    return Evaluation(task.name, model.variant, threshold, n, exits), per_image


def load_model(task: Task, variant: str, checkpoint: str, arch_name: str = "hrnet_tiny") -> ADPCHRNet:
    model = ADPCHRNet(arch(arch_name), variant, task.outputs)
    load_file(model, checkpoint)
    return model.eval()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--variant", required=True, choices=("rh", "adpc"))
    p.add_argument("--arch", default="hrnet_tiny")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--thresholds", default="", help="comma-separated (adpc); none: no masks")
    p.add_argument("--n", type=int, default=TEST_SCENES)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    task = Task(args.task, args.seed)
    model = load_model(task, args.variant, args.checkpoint, args.arch)
    ts: list[Optional[float]] = [float(t) for t in args.thresholds.split(",") if t] or [None]
    results = []
    for t in ts:
        ev, _ = evaluate(model, task, t, args.n)
        results.append(asdict(ev))
        print(f"{args.task} {args.variant} threshold {t}: " + "  ".join(
            f"exit{e.exit} {e.accuracy:.2f} @ {e.gmacs:.4f} GMACs ({100 * e.computed:.0f}%)" for e in ev.exits), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
