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

from .chart import SpeedupChart


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
    cs = curves(reports)
    ymax = max([1.2] + [sp for pts in cs.values() for _, sp in pts]) * 1.1
    chart = SpeedupChart((760, 460), (60, 210, 30, 50), ymax)
    chart.x_ticks(10)
    step = 0.25 if ymax < 2 else 0.5
    v = 0.0
    while v <= ymax:
        chart.y_tick(v, f"{v:.2f}x")
        v += step
    chart.level(1.0, (150, 150, 150), "dense (rh) speed")
    chart.titles("sparse stage speed / dense stage speed (ONNX Runtime CPU)", "computed fraction of the stage")
    chart.curves(cs)
    chart.save(out)


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
