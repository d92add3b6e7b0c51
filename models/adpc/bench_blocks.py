"""Latency of blocks stages against their dense twins on ONNX Runtime (CPU,
through the ctypes runner), per stage and active-cell fraction, in one run.

    python3 -m models.adpc.bench_blocks [--arch hrnet_w18_small_v2] [--height 256 --width 512] \
        [--block-size 16] [--threads 2] [--repeats 15] [--fractions 1,0.75,0.5,0.25,0.1] [--bundle DIR]

Random weights (seed 1) and random state inputs. For each stage and fraction a
the active cells are a random set of round(a * G) cells (at least one), run
with N equal to that count (no bucket padding: a bucket of N costs what N
active cells cost). Dense twin and blocks graph runs alternate, and the
median of --repeats runs of each is reported, so the ratios are measured
within one run. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import blocks
from .build import build
from .bundle_run import graph_output_shapes
from .config import ARCHS, OUTPUT_STRIDE
from .export import export
from .labels import CITYSCAPES
from .ort import Runtime

FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.1)


def graph_input_shapes(path: Path) -> dict[str, list[int]]:
    import onnx
    g = onnx.load(str(path), load_external_data=False).graph
    return {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def bench(bundle: Path, fractions: Sequence[float], threads: int, repeats: int, seed: int = 0) -> list[dict]:
    man = json.loads((bundle / "bundle.json").read_text())
    h = man["input"]["shape"][2] // man["output_stride"]
    w = man["input"]["shape"][3] // man["output_stride"]
    rt = Runtime(threads=threads)
    rng = np.random.default_rng(seed)
    rows = []
    for st in man["stages"]:
        if st["mode"] != "blocks":
            continue
        grid = blocks.Grid(h, w, st["blocks"]["size"])
        dense_file = bundle / st["blocks"]["dense"]["file"]
        sess_b, sess_d = rt.session(bundle / st["file"]), rt.session(dense_file)
        outs = graph_output_shapes(bundle / st["file"])
        feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in graph_input_shapes(dense_file).items()
                 if n != st["blocks"]["dense"]["mask"]}
        for a in fractions:
            n = max(1, int(round(a * grid.cells)))
            ids = np.sort(rng.choice(grid.cells, n, replace=False))
            bl, nb = grid.inputs(ids, n)
            fb = {**feeds, "blocks": bl, "neighbours": nb}
            fd = {**feeds, st["blocks"]["dense"]["mask"]: grid.block_mask(ids)}
            for _ in range(2):  # warm-up
                sess_b.run(fb, outs)
                sess_d.run(fd, outs)
            tb, td = [], []
            for _ in range(repeats):
                tb.append(median_ms(lambda: sess_b.run(fb, outs), 1))
                td.append(median_ms(lambda: sess_d.run(fd, outs), 1))
            rows.append({"stage": st["name"], "active_fraction": n / grid.cells, "cells": n,
                         "dense_ms": float(np.median(td)), "blocks_ms": float(np.median(tb))})
            rows[-1]["speedup"] = rows[-1]["dense_ms"] / rows[-1]["blocks_ms"]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| stage | a (cells) | dense twin ms | blocks ms | speedup | target 0.7/a |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        a = r["active_fraction"]
        lines.append(f"| {r['stage']} | {a:.2f} ({r['cells']}) | {r['dense_ms']:.2f} | {r['blocks_ms']:.2f} | "
                     f"{r['speedup']:.2f}x | {min(0.7 / a, 99):.2f}x |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.bench_blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="hrnet_w18_small_v2", choices=sorted(ARCHS))
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--block-size", type=int, default=blocks.DEFAULT_SIZE)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    p.add_argument("--min-cell", type=int, default=blocks.MIN_CELL, help="as export --min-cell")
    p.add_argument("--bundle", help="an existing blocks bundle (default: export one with random weights)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = p.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    with tempfile.TemporaryDirectory() as d:
        bundle = Path(args.bundle) if args.bundle else Path(d) / "b"
        if not args.bundle:
            model = build(args.arch, "adpc", seed=1)
            export(model, bundle, height=args.height, width=args.width, threshold=0.998, labels=CITYSCAPES,
                   name="bench", mode="blocks", block_size=args.block_size, min_cell=args.min_cell)
        rows = bench(bundle, fractions, args.threads, args.repeats)
    man_h, man_w = args.height // OUTPUT_STRIDE, args.width // OUTPUT_STRIDE
    print(f"{args.arch} at {args.height}x{args.width}, {args.block_size}-px cells "
          f"({blocks.Grid(man_h, man_w, args.block_size).cells} cells, blockwise from {args.min_cell}-px cells), ORT CPU {args.threads} threads, "
          f"median of {args.repeats}\n")
    print(table(rows))
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
