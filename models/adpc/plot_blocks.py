"""Plots the blocks-stage latency curve of `edge bench --json`: speedup of
the blocks graph over the dense twin against the active fraction, per stage,
with the issue's target 0.7/a, as a PNG (python3-pil).

    bin/edge bench --bundle B --baseline B0 --json > bench.json
    python3 -m models.adpc.plot_blocks bench.json --out docs/blocks-speedup.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from .chart import SpeedupChart


def plot(report: dict, out: Path) -> None:
    curves: dict[str, list[tuple[float, float]]] = {}
    for s in report["stages"]:
        curves.setdefault(s["stage"], []).append((s["active_fraction"], s["speedup"]))
    ymax = max([7.0] + [sp for pts in curves.values() for _, sp in pts]) * 1.05
    chart = SpeedupChart((720, 460), (60, 180, 40, 50), ymax)
    chart.x_ticks(5)
    for sp in range(0, int(ymax) + 1):
        chart.y_tick(sp, f"{sp}")
    chart.level(1, (160, 160, 160))
    target = [chart.xy(a / 100, 0.7 / (a / 100)) for a in range(10, 101) if 0.7 / (a / 100) <= ymax]
    chart.draw.line(target, fill=(0, 0, 0), width=1)
    chart.draw.text((chart.L + 6, chart.T + 4), "target 0.7/a", fill="black")
    chart.titles(f"{report['bundle']}: blocks graph speedup over the dense twin ({report['provider']})",
                 "active fraction of cells (a)")
    chart.curves({stage: sorted(pts) for stage, pts in sorted(curves.items())})
    if "frame_ratio" in report:
        chart.note(0, f"frame ratio {report['frame_ratio']:.2f}")
        chart.note(1, f"vs {report.get('baseline', '')}"[:28])
    chart.save(out)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.plot_blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("report")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    plot(json.loads(Path(args.report).read_text()), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
