"""Per-stage timing of sparse stages against their dense graphs (the `rh`
twin's stages) on ONNX Runtime CPU, at synthetic computed fractions.

    python3 -m models.adpc.bench_sparse --arch hrnet_w18_small_v2 --height 512 --width 1024 \
        --active 1,1,1 --active 0.82,0.63,0.38 [--frames 5] [--threads 2] [--json out.json]

The model has random weights (`--seed`, default 1). The masks are synthetic
and nested: one smooth random field (seeded) at the exit resolution,
thresholded so that fractions A2 >= A3 >= A4 of its pixels are computed by
stages 2, 3 and 4 (spatially clustered, like confidence masks). Each frame
runs every stage's sparse graph and its dense graph alternately (interleaved:
A, B, B, A, ...) on the same states; the figures are medians over frames.
The frame ratio is (stage 1 + the sparse stages) / (stage 1 + the dense
stages), i.e. this bundle against its `rh` twin, before the runtime's own
per-frame work (tables, confidence, merge). `--masked` also times the masked
reference graphs in the same rotation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .build import build
from .config import ARCHS, OUTPUT_STRIDE
from .export import export
from .init import random_image
from .labels import CITYSCAPES
from .layers import MaskedConv2d
from .ort import Runtime
from . import sparse_tables
from .bundle_run import graph_output_shapes


def synthetic_masks(h: int, w: int, active: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Nested uint8 masks [h, w] with fractions `active` of ones: a random
    field smooth over ~8 pixels (bicubic from 1/8 resolution), thresholded at
    its quantiles."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 1, max(1, h // 8), max(1, w // 8), generator=g)
    f = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()
    order = np.sort(f.ravel())
    masks = []
    for a in active:
        if a >= 1:
            masks.append(np.ones((h, w), np.uint8))
        elif a <= 0:
            masks.append(np.zeros((h, w), np.uint8))
        else:
            masks.append((f <= order[int(a * (f.size - 1))]).astype(np.uint8))
    return masks


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.bench_sparse", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--active", action="append", required=True, help="A2,A3,A4 computed fractions (repeatable)")
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bundle", help="an exported adpc bundle of this arch and size (default: export one)")
    p.add_argument("--lambda-range", help="LO,HI: when exporting, draw each fill's lambda uniformly from this "
                   "range (seeded) instead of the random initialisation's 0.8-3.0, e.g. 2.1,4.1 as trained")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time (robust on a loaded machine with --threads 1)")
    p.add_argument("--masked", action="store_true", help="also time the masked reference graphs")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    points = [tuple(float(v) for v in a.split(",")) for a in args.active]
    if any(len(pt) != 3 or not 1 >= pt[0] >= pt[1] >= pt[2] >= 0 for pt in points):
        p.error("--active wants A2,A3,A4 with 1 >= A2 >= A3 >= A4 >= 0")
    torch.set_num_threads(args.threads)
    tmp = None
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-sparse-")
        bundle = Path(tmp.name)
        model = build(args.arch, "adpc", seed=args.seed)
        if args.lambda_range:
            lo, hi = (float(v) for v in args.lambda_range.split(","))
            g = torch.Generator().manual_seed(args.seed)
            for m in model.modules():
                if isinstance(m, MaskedConv2d):
                    m.Lambda.data.fill_(float(lo + (hi - lo) * torch.rand((), generator=g)))
        export(model, bundle, height=args.height, width=args.width, threshold=0.998, labels=CITYSCAPES,
               name="bench")
    man = json.loads((bundle / "bundle.json").read_text())
    rt = Runtime(threads=args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    stages = man["stages"]
    x = random_image(args.seed + 100, args.height, args.width).numpy()
    h, w = args.height // OUTPUT_STRIDE, args.width // OUTPUT_STRIDE
    sess = {}
    for st in stages:
        files = [st["file"]]
        if st["mode"] == "sparse":
            files.append(st["sparse"]["dense"]["file"])
            if args.masked:
                files.append(st["sparse"]["masked"]["file"])
        for f in files:
            sess[f] = (rt.session(bundle / f), graph_output_shapes(bundle / f))

    def run(file: str, feeds: dict) -> tuple[float, dict]:
        s, outs = sess[file]
        t0 = clock()
        res = s.run(feeds, outs)
        return clock() - t0, res

    # States from the dense path (their values do not change the work done).
    t1, res = run(stages[0]["file"], {"image": x})
    state = dict(res)
    dense_feeds = []
    for st in stages[1:]:
        feeds = {n: state[src[len("state:"):]] for n, src in st["inputs"].items() if src.startswith("state:")}
        dense_feeds.append(feeds)
        _, res = run(st["sparse"]["dense"]["file"], feeds)
        state.update(res)
    report = {"arch": args.arch, "height": args.height, "width": args.width, "threads": args.threads,
              "lambda_range": args.lambda_range or "init (0.8-3.0)",
              "clock": args.clock, "load": os.getloadavg()[0],
              "seed": args.seed, "frames": args.frames, "points": []}
    for pt in points:
        masks = synthetic_masks(h, w, pt, args.seed)
        sparse_feeds = [dict(f, **sparse_tables.feeds(st, m, OUTPUT_STRIDE)) for f, st, m in
                        zip(dense_feeds, stages[1:], masks)]
        masked_feeds = [dict(f, **{st["sparse"]["masked"]["mask"]: m[None, None].astype(np.float32)})
                        for f, st, m in zip(dense_feeds, stages[1:], masks)]
        times: dict[str, list[float]] = {"stage1": []}
        for k in range(2, len(stages) + 1):
            times[f"sparse{k}"], times[f"dense{k}"], times[f"masked{k}"] = [], [], []
        for frame in range(args.frames + 1):  # the first frame warms up
            t1, _ = run(stages[0]["file"], {"image": x})
            got = {"stage1": t1}
            for k, (st, sf, df, mf) in enumerate(zip(stages[1:], sparse_feeds, dense_feeds, masked_feeds), start=2):
                order = [("sparse", st["file"], sf), ("dense", st["sparse"]["dense"]["file"], df)]
                if args.masked:
                    order.append(("masked", st["sparse"]["masked"]["file"], mf))
                for kind, file, feeds in (order if frame % 2 else order[::-1]):
                    got[f"{kind}{k}"], _ = run(file, feeds)
            if frame:
                for key, v in got.items():
                    times[key].append(v)
        med = {key: statistics.median(v) for key, v in times.items() if v}
        per_stage = []
        for k, (st, m) in enumerate(zip(stages[1:], masks), start=2):
            fr = {s: float(sparse_tables.at_stride(m, int(s), OUTPUT_STRIDE).mean()) for s in st["sparse"]["bands"]}
            per_stage.append({"stage": k, "active": pt[k - 2], "computed_fraction": fr,
                              "sparse_ms": med[f"sparse{k}"] * 1e3, "dense_ms": med[f"dense{k}"] * 1e3,
                              "speedup": med[f"dense{k}"] / med[f"sparse{k}"]})
            if args.masked:
                per_stage[-1]["masked_ms"] = med[f"masked{k}"] * 1e3
        sparse_frame = med["stage1"] + sum(med[f"sparse{k}"] for k in range(2, len(stages) + 1))
        dense_frame = med["stage1"] + sum(med[f"dense{k}"] for k in range(2, len(stages) + 1))
        point = {"active": list(pt), "stage1_ms": med["stage1"] * 1e3, "stages": per_stage,
                 "frame_ratio": sparse_frame / dense_frame}
        report["points"].append(point)
        cells = ", ".join(f"stage {s['stage']} {s['sparse_ms']:.0f}/{s['dense_ms']:.0f} ms ({s['speedup']:.2f}x)"
                          + (f" masked {s['masked_ms']:.0f} ms" if "masked_ms" in s else "") for s in per_stage)
        print(f"active {','.join(map(str, pt))}: frame ratio {point['frame_ratio']:.3f} "
              f"(stage 1 {point['stage1_ms']:.0f} ms; sparse/dense {cells})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
