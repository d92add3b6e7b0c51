"""Fine-tune a pixel-mask ADP-C model into its block-mask variant (blocks
mode, docs/bundle.md) and report the accuracy change at equal threshold.

    /usr/bin/python3 -m models.adpc.finetune_blocks --task seg|pose --init FILE.pth \
        [--block-size 8] [--threshold T] [--steps 200] [--batch 8] [--lr 3e-4] \
        [--n 200] [--out FILE.pth] [--json OUT]

The block-mask variant has the same weights (no new state_dict keys): stages
2-4 gate the residual blocks of the branches with the pixel mask widened to
size x size cells (out = x + M (F(x) - x)), everything else dense without
the RBF fill, copy aggregation with the block mask. Training is the paper's
(and train.py's): loss = sum over exits of the task loss on the merged
outputs, masks on with the test-time criterion and threshold, on the
training split (tasks.Task, batches a pure function of the step). Before and
after, the held-out test images are evaluated three ways: the pixel-mask
ADP-C model (tasks.forward), the block-mask variant with the initial weights
(no fine-tuning), and after fine-tuning. `--steps 0` only evaluates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from . import blocks
from .config import NUM_EXITS, arch
from .evaluate import MACCounter, centre_labels, confusion, miou
from .export import blocks_macs
from .flops import GIGA, count_convs
from .hrnet import ADPCHRNet
from .layers import Masks
from .checkpoint import load_file
from .data import pose
from .tasks import TASKS, Task, confidence_mask, forward, to_tensor

Forward = Callable[[ADPCHRNet, Tensor], tuple[list[Tensor], list[Tensor], list[Tensor]]]
DEFAULT_THRESHOLD = {"seg": 0.99, "pose": 0.1}
FIRST_SCENE = 10**6  # training scenes from here on: none of them seen by train.py's runs


def forward_blocks(model: ADPCHRNet, x: Tensor, task: str, threshold: Optional[float],
                   size: int) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The block-mask anytime forward with gradients: (merged outputs per
    exit, pixel masks and block masks fed to stages 2..4). The pixel mask is
    cumulative, as the runtime keeps it. threshold None: nothing frozen."""
    state, logits = model.stage(1, [x])
    merged, pixels, cells = [logits], [], []
    pixel = torch.ones_like(logits[:, :1])
    for k in range(2, NUM_EXITS + 1):
        if threshold is not None:
            pixel = pixel * confidence_mask(merged[-1].detach(), task, threshold)
        block = blocks.widen(pixel, size)
        pixels.append(pixel)
        cells.append(block)
        state, logits = model.stage(k, state, gate=Masks(block))
        merged.append(torch.where(block > 0, logits, merged[-1]))
    return merged, pixels, cells


@dataclass
class ExitScore:
    exit: int
    accuracy: float  # mIoU or PCKh@0.5, percent
    gmacs: float  # cumulative effective GMACs (MACs / 2^30), mean per image
    computed: float  # mean fraction of pixels the stage computes (block mask for blocks)


@torch.no_grad()
def score(model: ADPCHRNet, task: Task, run: Forward, macs: Callable[[list[np.ndarray]], list[float]],
          n: int, batch: int = 20) -> list[ExitScore]:
    """Per-exit accuracy on test images 0..n-1 with the given forward."""
    model.eval()
    classes = task.outputs
    confs = [np.zeros((classes, classes), np.int64) for _ in range(NUM_EXITS)]
    correct, joints = np.zeros(NUM_EXITS), 0
    total_macs, computed = np.zeros(NUM_EXITS), np.zeros(NUM_EXITS)
    ds = task.dataset("test")
    for b0 in range(0, n, batch):
        idx = list(range(b0, min(b0 + batch, n)))
        images, y = ds.batch(idx)
        merged, _, gates = run(model, to_tensor(images))
        for i in range(len(idx)):
            ms = [g[i, 0].numpy() for g in gates]
            total_macs += np.cumsum(macs(ms))
            computed += [1.0] + [float(m.mean()) for m in ms]
            for k in range(NUM_EXITS):
                out = merged[k][i].numpy()
                if task.name == "seg":
                    confs[k] += confusion(out.argmax(0).astype(np.uint8), centre_labels(y[i]), classes)
                else:
                    correct[k] += pose.pckh(pose.decode(out), y[i]).sum()
            joints += len(pose.JOINTS)
    acc = [miou(c) if task.name == "seg" else float(100 * correct[k] / joints) for k, c in enumerate(confs)]
    return [ExitScore(k + 1, acc[k], float(total_macs[k] / n / GIGA), float(computed[k] / n))
            for k in range(NUM_EXITS)]


def blocks_macs_fn(model: ADPCHRNet, h: int, w: int) -> Callable[[list[np.ndarray]], list[float]]:
    """Effective MACs per stage of the block-mask variant: fixed + sum macs_r * p."""
    counts = count_convs(model, h, w)
    stages = [blocks_macs(counts, k) for k in range(1, NUM_EXITS + 1)]

    def per_stage(masks: list[np.ndarray]) -> list[float]:
        out = []
        for k, st in enumerate(stages):
            p = 1.0 if k == 0 else float(masks[k - 1].mean())
            out.append(st["fixed"] + sum(m["macs"] * p for m in st["masked"].values()))
        return out
    return per_stage


def finetune(model: ADPCHRNet, task: Task, threshold: float, size: int, steps: int, batch: int, lr: float,
             log: Callable[[str], None], freeze_bn: bool = True) -> None:
    """Trains the block-mask variant in place. freeze_bn keeps BatchNorm in
    eval mode (running statistics untouched): small CPU batches would
    otherwise replace the statistics the model was trained with."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:  # linear decay to 10 %
            g["lr"] = lr * (1 - 0.9 * step / max(1, steps))
        x, y = task.batch("train", [FIRST_SCENE + step * batch + j for j in range(batch)])
        merged, _, cells = forward_blocks(model, x, task.name, threshold, size)
        loss = sum(task.loss(m, y) for m in merged)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 10 == 0 or step + 1 == steps:
            cf = " ".join(f"{float(c.mean()):.2f}" for c in cells)
            log(f"step {step + 1}/{steps} loss {float(loss):.3f} cells computed {cf} ({time.time() - t0:.0f}s)")
    model.eval()


def table(rows: dict[str, list[ExitScore]], metric: str) -> str:
    lines = [f"| model | " + " | ".join(f"exit {k} {metric} (GMACs, computed)" for k in range(1, NUM_EXITS + 1)) + " |",
             "|---|" + "---|" * NUM_EXITS]
    for name, ex in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{e.accuracy:.2f} ({e.gmacs:.3f}, {e.computed:.2f})" for e in ex)
                     + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.finetune_blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--init", required=True, help="pixel-mask ADP-C weights (.pth state dict)")
    p.add_argument("--arch", default="hrnet_tiny")
    p.add_argument("--block-size", type=int, default=8)
    p.add_argument("--threshold", type=float, help="default seg 0.99, pose 0.1 (as train.py)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--n", type=int, default=200, help="test images evaluated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics while fine-tuning")
    p.add_argument("--out", help="fine-tuned weights (.pth)")
    p.add_argument("--json", help="write the scores here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    threshold = DEFAULT_THRESHOLD[args.task] if args.threshold is None else args.threshold
    task = Task(args.task, args.seed)
    model = ADPCHRNet(arch(args.arch), "adpc", task.outputs)
    load_file(model, args.init)
    model.eval()
    h, w = task.size
    blocks.Grid(h // 4, w // 4, args.block_size)
    counter = MACCounter(model, h, w)
    bmacs = blocks_macs_fn(model, h, w)

    def pixel_run(m: ADPCHRNet, x: Tensor):
        merged, masks = forward(m, x, args.task, threshold)
        return merged, masks, masks

    def block_run(m: ADPCHRNet, x: Tensor):
        return forward_blocks(m, x, args.task, threshold, args.block_size)

    metric = "mIoU" if args.task == "seg" else "PCKh"
    rows = {f"ADP-C pixel masks @ {threshold}": score(model, task, pixel_run, counter.per_stage, args.n),
            f"blocks {args.block_size}px, not fine-tuned": score(model, task, block_run, bmacs, args.n)}
    if args.steps > 0:
        finetune(model, task, threshold, args.block_size, args.steps, args.batch, args.lr,
                 lambda s: print(s, flush=True), freeze_bn=not args.train_bn)
        rows[f"blocks {args.block_size}px, fine-tuned {args.steps} steps"] = score(model, task, block_run, bmacs, args.n)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, args.out)
    print(f"{args.task} {args.arch} threshold {threshold}, {args.n} test images; "
          f"cells of {args.block_size} px at stride 4\n")
    print(table(rows, metric))
    if args.json:
        Path(args.json).write_text(json.dumps({k: [asdict(e) for e in v] for k, v in rows.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
