"""Ship trained models to models/zoo: export the bundle, evaluate it (rh
baseline, shipped threshold and a threshold sweep), write the markdown table,
the accuracy-vs-GMACs plot, the 20-image Go test set and sample images.

    /usr/bin/python3 -m models.adpc.zoo --task seg --adpc A.pth --rh R.pth \
        --threshold 0.99 --sweep 0.9,0.95,0.98,0.99,0.995,0.999 --out models/zoo

Needs python3-pil (PNG files and the plot).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .checkpoint import sha256
from .config import NUM_EXITS
from .data import pose, scenes
from .data.fashion import CLASSES
from .evaluate import Evaluation, evaluate, load_model
from .export import export
from .labels import Label
from .tasks import TASKS, Task

TEST_IMAGES = 20
JOINT_COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
                 (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0), (0, 85, 255), (0, 0, 255),
                 (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170))
NAMES = {"seg": "fashion-seg", "pose": "fashion-pose"}


def seg_labels() -> list[Label]:
    names = list(CLASSES) + ["background"]
    return [Label(n, tuple(c)) for n, c in zip(names, scenes.COLORS)]  # type: ignore[arg-type]


def pose_labels() -> list[Label]:
    return [Label(n, c) for n, c in zip(pose.JOINTS, JOINT_COLOURS)]


def write_bundle(task: Task, variant: str, ckpt: str, threshold: float, out: Path, name: str) -> dict:
    model = load_model(task, variant, ckpt)
    h, w = task.size
    labels = seg_labels() if task.name == "seg" else pose_labels()
    man = export(model, out, height=h, width=w, threshold=threshold, labels=labels, name=name,
                 checkpoint_sha256=sha256(ckpt))
    if task.name == "pose":
        man["task"] = "keypoints"
        man["labels"] = []
        man["keypoints"] = {"names": list(pose.JOINTS), "skeleton": [list(p) for p in pose.SKELETON],
                            "head": list(pose.HEAD)}
        man["confidence"] = {"criterion": "heatmap_peak", "threshold": threshold}
        keys = ["format", "name", "task", "input", "output_stride", "labels", "keypoints", "confidence",
                "stages", "provenance"]
        man = {k: man[k] for k in keys}
        (out / "bundle.json").write_text(json.dumps(man, indent=2) + "\n")
    return man


def metric(task: str) -> str:
    return "mIoU" if task == "seg" else "PCKh@0.5"


def table(task: str, rh: Evaluation, shipped: Evaluation, sweep: Sequence[Evaluation]) -> str:
    m = metric(task)
    lines = [f"Held-out test split, {rh.images} images; {m} in percent / cumulative effective GMACs "
             "(MACs / 2^30, mean per image) / percent of output pixels computed by the stage.", "",
             "| model | threshold | exit 1 | exit 2 | exit 3 | exit 4 | GMACs saved at exit 4 |",
             "|---|---|---|---|---|---|---|"]
    base = rh.exits[-1].gmacs

    def row(label: str, ev: Evaluation) -> str:
        cells = [f"{e.accuracy:.2f} / {e.gmacs:.4f} / {100 * e.computed:.0f}%" for e in ev.exits]
        t = "none" if ev.threshold is None else f"{ev.threshold:g}"
        return f"| {label} | {t} | " + " | ".join(cells) + f" | {100 * (1 - ev.exits[-1].gmacs / base):.1f}% |"

    lines.append(row("rh", rh))
    lines.append(row("**adpc (shipped)**", shipped))
    for ev in sweep:
        lines.append(row("adpc", ev))
    return "\n".join(lines) + "\n"


def plot(path: Path, task: str, rh: Evaluation, shipped: Evaluation, sweep: Sequence[Evaluation]) -> None:
    from PIL import Image, ImageDraw

    W, H, L, R, T, B = 720, 480, 70, 170, 30, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    evs = [rh, shipped, *sweep]
    xmax = max(e.gmacs for ev in evs for e in ev.exits) * 1.05
    ymax = min(100.0, max(e.accuracy for ev in evs for e in ev.exits) * 1.1 + 1)

    def xy(g: float, a: float) -> tuple[float, float]:
        return L + (W - L - R) * g / xmax, H - B - (H - T - B) * a / ymax

    d.rectangle([L, T, W - R, H - B], outline="black")
    for i in range(6):
        g, a = xmax * i / 5, ymax * i / 5
        x, _ = xy(g, 0)
        _, y = xy(0, a)
        d.line([x, H - B, x, H - B + 4], fill="black")
        d.text((x - 14, H - B + 6), f"{g:.3f}", fill="black")
        d.line([L - 4, y, L, y], fill="black")
        d.text((L - 34, y - 6), f"{a:.0f}", fill="black")
    d.text(((W - R) // 2 - 60, H - 22), "cumulative effective GMACs", fill="black")
    d.text((6, T - 22), f"{metric(task)} (%) per exit, test split", fill="black")
    palette = [(120, 120, 120), (200, 30, 30), (30, 90, 200), (30, 160, 60), (200, 140, 0),
               (140, 60, 180), (0, 160, 160), (120, 80, 40), (220, 0, 140)]
    for n, ev in enumerate(evs):
        c = palette[n % len(palette)]
        pts = [xy(e.gmacs, e.accuracy) for e in ev.exits]
        d.line(pts, fill=c, width=3 if n < 2 else 1)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
        label = "rh (no masks)" if n == 0 else (f"adpc {ev.threshold:g}" + (" shipped" if n == 1 else ""))
        d.line([W - R + 10, T + 10 + 18 * n, W - R + 30, T + 10 + 18 * n], fill=c, width=3)
        d.text((W - R + 36, T + 4 + 18 * n), label, fill="black")
    img.save(path)


def save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def test_set(task: Task, out: Path, shipped: Evaluation, rh: Evaluation) -> None:
    """Images 0..19 of the test split with their ground truth and the PyTorch
    per-exit figures, for the Go test (package evaluate)."""
    out.mkdir(parents=True, exist_ok=True)
    ds = task.dataset("test")
    items = []
    for i in range(TEST_IMAGES):
        if task.name == "seg":
            img, lab = ds.scene(i)
            save_png(out / f"{i:02d}.png", img)
            save_png(out / f"{i:02d}_labels.png", lab)
            items.append({"image": f"{i:02d}.png", "labels": f"{i:02d}_labels.png"})
        else:
            img, joints = ds.sample(i)
            save_png(out / f"{i:02d}.png", img)
            items.append({"image": f"{i:02d}.png", "joints": [[round(float(v), 4) for v in p] for p in joints]})
    doc = {"task": task.name, "seed": task.seed, "split": "test", "indices": list(range(TEST_IMAGES)),
           "metric": metric(task.name), "images": items,
           "adpc": {"threshold": shipped.threshold, "exits": [round(e.accuracy, 4) for e in shipped.exits]},
           "rh": {"exits": [round(e.accuracy, 4) for e in rh.exits]}}
    if task.name == "seg":
        doc["ignore"] = scenes.IGNORE
        doc["stride_sampling"] = "label at row 4i+2, column 4j+2 of each output cell"
    (out / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(2)
    task = Task(args.task, args.seed)
    zoo = Path(args.out)
    name = NAMES[args.task]
    adpc_dir = zoo / f"{name}-adpc"
    man = write_bundle(task, "adpc", args.adpc, args.threshold, adpc_dir, f"{name}-adpc")
    if args.task == "seg":
        write_bundle(task, "rh", args.rh, 1.0, zoo / f"{name}-rh", f"{name}-rh")
    adpc = load_model(task, "adpc", args.adpc)
    rh_model = load_model(task, "rh", args.rh)
    rh, _ = evaluate(rh_model, task, None, args.n)
    shipped, _ = evaluate(adpc, task, args.threshold, args.n)
    sweep = []
    for t in [float(s) for s in args.sweep.split(",") if s]:
        ev, _ = evaluate(adpc, task, t, args.n)
        sweep.append(ev)
        print(f"threshold {t}: " + " ".join(f"{e.accuracy:.2f}@{e.gmacs:.4f}" for e in ev.exits), flush=True)
    (adpc_dir / "table.md").write_text(table(args.task, rh, shipped, sweep))
    plot(adpc_dir / "plot.png", args.task, rh, shipped, sweep)
    (adpc_dir / "eval.json").write_text(json.dumps(
        {"rh": asdict(rh), "shipped": asdict(shipped), "sweep": [asdict(e) for e in sweep]}, indent=1) + "\n")
    if args.task == "seg":
        rh_dir = zoo / f"{name}-rh"
        (rh_dir / "table.md").write_text(table(args.task, rh, shipped, sweep))
        plot(rh_dir / "plot.png", args.task, rh, shipped, sweep)
    # PyTorch figures on the 20 Go test images, at the shipped threshold.
    small_rh, _ = evaluate(rh_model, task, None, TEST_IMAGES)
    small, _ = evaluate(adpc, task, args.threshold, TEST_IMAGES)
    test_set(task, adpc_dir / "testset", small, small_rh)
    samples = zoo / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    ds = task.dataset("test")
    for i in range(100, 100 + args.samples):
        img = ds.scene(i)[0] if args.task == "seg" else ds.sample(i)[0]
        save_png(samples / f"{'scene' if args.task == 'seg' else 'figure'}-{i}.png", img)
    print(table(args.task, rh, shipped, sweep))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.zoo", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--adpc", required=True, help="adpc weights (.pth)")
    p.add_argument("--rh", required=True, help="rh weights (.pth)")
    p.add_argument("--threshold", type=float, required=True, help="shipped threshold of the adpc bundle")
    p.add_argument("--sweep", required=True, help="comma-separated thresholds")
    p.add_argument("--n", type=int, default=200, help="test images")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--out", default="models/zoo")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
