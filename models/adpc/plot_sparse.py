"""Plots the per-stage speedup of sparse stages over their dense twin's
stages against the computed fraction, as a PNG (python3-pil): one curve per
report and stage, from `sweep_native` reports (the native kernels against
the `rh` bundle's stages in `edge bench`) or `bench_sparse` reports (ONNX
Runtime's sparse graphs against the dense graphs).

    python3 -m models.adpc.plot_sparse docs/native-bench-w18.json docs/native-bench-w48.json \
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
        if "model" in r:  # sweep_native: the measured computed fraction
            name, frac = f"{r['model']} native", "computed"
        else:  # bench_sparse: the nominal one
            name, frac = r["arch"].replace("hrnet_", "").replace("_small_v2", "-Small").upper() + " graph", "active"
        for pt in r["points"]:
            for s in pt["stages"]:
                out.setdefault(f"{name} stage {s['stage']}", []).append((s[frac], s["speedup"]))
    return {k: sorted(v) for k, v in out.items()}


def plot(reports: list[dict], out: Path) -> None:
    cs = curves(reports)
    ymax = max([1.2] + [sp for pts in cs.values() for _, sp in pts]) * 1.1
    chart = SpeedupChart((800, 460), (60, 250, 30, 50), ymax)
    chart.x_ticks(10)
    step = 0.25 if ymax < 2 else 0.5
    v = 0.0
    while v <= ymax:
        chart.y_tick(v, f"{v:.2f}x")
        v += step
    chart.level(1.0, (150, 150, 150), "dense (rh) speed")
    threads = "/".join(sorted({str(r["threads"]) for r in reports}))
    chart.titles(f"sparse stage speed / dense (rh) stage speed, CPU, {threads} threads", "computed fraction of the stage")
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
