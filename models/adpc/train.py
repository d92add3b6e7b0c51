"""Train an ADP-C (or RH) HRNet on the synthetic scenes or figures, on CPU
(or `--device cuda`), the way the paper trains: all exits jointly, loss = sum
of per-exit losses on the merged (copy-aggregated) outputs, confidence masks
on during training with the same threshold as at test time.

    /usr/bin/python3 -m models.adpc.train --task seg|pose --variant adpc|rh \
        [--arch hrnet_tiny] [--steps N] [--batch B] [--seed S] [--threshold T] \
        --work DIR --out FILE.pth

Each batch is a pure function of (seed, step), so a run resumes from its last
checkpoint in DIR (written every --every steps) and gives the same batches.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from .config import ARCHS, arch
from .hrnet import ADPCHRNet
from .tasks import TASKS, Task, forward


class Batches(torch.utils.data.Dataset):
    """Batch i of a run starting at step `first`: a pure function of the step."""

    def __init__(self, task: Task, first: int, last: int, batch: int) -> None:
        self.task, self.first, self.last, self.batch = task, first, last, batch

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, i: int):
        step = self.first + i
        return self.task.batch("train", [step * self.batch + j for j in range(self.batch)])

DEFAULT_THRESHOLD = {"seg": 0.99, "pose": 0.1}
CALIBRATE = 40  # steps timed by --budget


def lr_at(step: int, steps: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 1% of base."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def bar(step: int, steps: int, started: float, first: int, width: int = 24) -> str:
    done = step / steps
    n = int(width * done)
    rate = (step - first) / max(time.time() - started, 1e-6)
    eta = (steps - step) / rate if rate > 0 else float("inf")
    e = "--:--" if math.isinf(eta) else f"{int(eta // 60):02d}:{int(eta % 60):02d}"
    return f"[{'#' * n}{'-' * (width - n)}] {step}/{steps} {100 * done:5.1f}% {rate:5.2f} it/s ETA {e}"


def checkpoint_path(work: Path) -> Path:
    return work / "last.pt"


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = Task(args.task, args.seed)
    model = ADPCHRNet(arch(args.arch), args.variant, task.outputs)
    device = torch.device(args.device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    if args.init:
        # Fine-tuning: start from trained weights with a fresh optimiser.
        model.load_state_dict(torch.load(args.init, map_location=device))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = 0
    ck = checkpoint_path(work)
    if ck.exists():
        state = torch.load(str(ck), map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        print(f"resumed from {ck} at step {start}", flush=True)
    threshold: Optional[float] = args.threshold if args.variant == "adpc" else None
    model.train()
    started = time.time()
    running: Optional[list[float]] = None
    # A generous upper bound when --budget fixes the step count on the way.
    last = args.steps if not args.budget else 10**7
    loader = torch.utils.data.DataLoader(Batches(task, start, last, args.batch), batch_size=None,
                                         shuffle=False, num_workers=args.workers)
    for step, (x, y) in enumerate(loader, start=start):
        if args.budget and step == start + CALIBRATE:
            # Warm-up (first 100 steps) does not depend on the total, so this
            # run equals one started with --steps at the printed value.
            rate = CALIBRATE / (time.time() - started)
            args.steps = max(start + CALIBRATE, int(rate * args.budget) // 50 * 50)
            args.budget = 0
            print(f"--budget: {rate:.2f} it/s, steps fixed at {args.steps} (same as --steps {args.steps})", flush=True)
        if step >= args.steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        x, y = x.to(device), y.to(device)
        merged, masks = forward(model, x, args.task, threshold if step >= int(args.mask_warmup * args.steps) else None)
        losses = [task.loss(m, y) for m in merged]
        loss = sum(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        vals = [float(l) for l in losses] + [float(m.mean()) for m in masks]
        running = vals if running is None else [0.95 * r + 0.05 * v for r, v in zip(running, vals)]
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            ls = " ".join(f"{v:.3f}" for v in running[:4])
            ps = " ".join(f"{v:.2f}" for v in running[4:])
            print(f"{bar(done, args.steps, started, start)} loss/exit {ls} computed {ps}", flush=True)
        if done % args.every == 0 or done == args.steps:
            tmp = ck.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done,
                        "args": vars(args)}, str(tmp))
            os.replace(tmp, ck)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, str(out))
    print(f"wrote {out} after {args.steps} steps ({time.time() - started:.0f} s this run)", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--variant", required=True, choices=("rh", "adpc"))
    p.add_argument("--arch", default="hrnet_tiny", choices=sorted(ARCHS))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threshold", type=float, help="training threshold of adpc (default seg 0.99, pose 0.1)")
    p.add_argument("--mask-warmup", type=float, default=0.0,
                   help="fraction of the steps trained without masks before they are switched on")
    p.add_argument("--init", help="start from these weights (.pth state dict) instead of random ones")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="data-loading processes")
    p.add_argument("--budget", type=float, default=0,
                   help="seconds: time the first steps, then fix --steps to fit (printed; overrides --steps)")
    p.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--work", required=True, help="checkpoint directory (resumes from it)")
    p.add_argument("--out", required=True, help="final weights (.pth, a plain state dict)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD[args.task]
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
