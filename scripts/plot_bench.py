"""Plots the blocks-stage latency curve of `edge bench --json`: speedup of
the sparse graph over the dense twin against the active fraction, per stage,
with the issue's target 0.7/a. Usage (Debian's Python with python3-pil):

    bin/edge bench --bundle B --baseline B0 --json > bench.json
    /usr/bin/python3 scripts/plot_bench.py bench.json docs/blocks-speedup.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = [(200, 30, 30), (30, 90, 200), (30, 160, 60), (200, 140, 0), (140, 60, 180)]


def plot(report: dict, out: Path) -> None:
    W, H, L, R, T, B = 720, 460, 60, 180, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    curves: dict[str, list[tuple[float, float]]] = {}
    for s in report["stages"]:
        curves.setdefault(s["stage"], []).append((s["active_fraction"], s["speedup"]))
    ymax = max([7.0] + [sp for pts in curves.values() for _, sp in pts]) * 1.05

    def xy(a: float, sp: float) -> tuple[float, float]:
        return L + (W - L - R) * a, H - B - (H - T - B) * sp / ymax

    d.rectangle([L, T, W - R, H - B], outline="black")
    for i in range(6):
        x, _ = xy(i / 5, 0)
        d.line([x, H - B, x, H - B + 4], fill="black")
        d.text((x - 8, H - B + 6), f"{i / 5:.1f}", fill="black")
    for sp in range(0, int(ymax) + 1):
        _, y = xy(0, sp)
        d.line([L - 4, y, L, y], fill="black")
        d.text((L - 24, y - 6), f"{sp}", fill="black")
    _, y1 = xy(0, 1)
    d.line([L, y1, W - R, y1], fill=(160, 160, 160))
    target = [xy(a / 100, 0.7 / (a / 100)) for a in range(10, 101) if 0.7 / (a / 100) <= ymax]
    d.line(target, fill=(0, 0, 0), width=1)
    d.text((L + 6, T + 4), "target 0.7/a", fill="black")
    d.text(((W - R) // 2 - 80, H - 22), "active fraction of cells (a)", fill="black")
    title = f"{report['bundle']}: blocks graph speedup over the dense twin ({report['provider']})"
    d.text((6, 8), title, fill="black")
    for n, (stage, pts) in enumerate(sorted(curves.items())):
        c = COLORS[n % len(COLORS)]
        pts = sorted(pts)
        d.line([xy(a, sp) for a, sp in pts], fill=c, width=3)
        for a, sp in pts:
            x, y = xy(a, sp)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
        d.line([W - R + 10, T + 10 + 18 * n, W - R + 30, T + 10 + 18 * n], fill=c, width=3)
        d.text((W - R + 36, T + 4 + 18 * n), stage, fill="black")
    if "frame_ratio" in report:
        d.text((W - R + 10, T + 120), f"frame ratio {report['frame_ratio']:.2f}", fill="black")
        d.text((W - R + 10, T + 136), f"vs {report.get('baseline', '')}"[:28], fill="black")
    img.save(out)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
