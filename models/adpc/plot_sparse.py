"""Plots the per-stage speedup of sparse stages over their dense graphs
against the computed fraction, from `bench_sparse --json` reports (one or
more; one curve per report and stage), as a PNG (python3-pil).

    python3 -m models.adpc.plot_sparse docs/sparse-bench-w18.json docs/sparse-bench-w48.json \
        --out docs/sparse-speedup.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

COLORS = [(200, 30, 30), (30, 90, 200), (30, 160, 60), (200, 140, 0), (140, 60, 180), (0, 150, 150)]


def curves(reports: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """label -> [(computed fraction, speedup)] sorted by fraction."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in reports:
        name = r["arch"].replace("hrnet_", "").replace("_small_v2", "-Small")
        for pt in r["points"]:
            for s in pt["stages"]:
                out.setdefault(f"{name} stage {s['stage']}", []).append((s["active"], s["speedup"]))
    return {k: sorted(v) for k, v in out.items()}


def plot(reports: list[dict], out: Path) -> None:
    W, H, L, R, T, B = 760, 460, 60, 210, 30, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    cs = curves(reports)
    ymax = max([1.2] + [sp for pts in cs.values() for _, sp in pts]) * 1.1

    def xy(a: float, sp: float) -> tuple[float, float]:
        return L + (W - L - R) * a, H - B - (H - T - B) * sp / ymax

    d.rectangle([L, T, W - R, H - B], outline="black")
    for i in range(11):
        x, _ = xy(i / 10, 0)
        d.line([x, H - B, x, H - B + 4], fill="black")
        d.text((x - 8, H - B + 8), f"{i / 10:.1f}", fill="black")
    step = 0.25 if ymax < 2 else 0.5
    v = 0.0
    while v <= ymax:
        _, y = xy(0, v)
        d.line([L - 4, y, L, y], fill="black")
        d.text((L - 40, y - 6), f"{v:.2f}x", fill="black")
        v += step
    _, y1 = xy(0, 1.0)
    d.line([L, y1, W - R, y1], fill=(150, 150, 150))
    d.text((L + 4, y1 - 14), "dense (rh) speed", fill=(120, 120, 120))
    d.text((L + (W - L - R) // 2 - 80, H - 22), "computed fraction of the stage", fill="black")
    d.text((L, 8), "sparse stage speed / dense stage speed (ONNX Runtime CPU)", fill="black")
    for i, (label, pts) in enumerate(cs.items()):
        color = COLORS[i % len(COLORS)]
        xs = [xy(a, sp) for a, sp in pts]
        for p0, p1 in zip(xs, xs[1:]):
            d.line([p0, p1], fill=color, width=2)
        for x, y in xs:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        d.line([W - R + 12, T + 10 + 18 * i, W - R + 36, T + 10 + 18 * i], fill=color, width=3)
        d.text((W - R + 42, T + 4 + 18 * i), label, fill="black")
    img.save(out)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.plot_sparse", description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    plot([json.loads(Path(r).read_text()) for r in args.reports], Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
