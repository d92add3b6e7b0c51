"""Experiment (docs/sparse.md, "What would close the gap"): would a fused
sparse convolution kernel pay? Four stacked masked 3x3 convolutions (+ BN
folded, ReLU) as adpc.MaskedConv3x3Rows custom ops (sparse_conv.c:
convolution at the computed pixels only, channels-last, AVX-512, with the
exact fill and background) against ONNX Runtime's dense Conv + Relu chain of
the same weights, at HRNet-W18-Small's branch shapes at 512x1024. Each
configuration is checked against the masked reference semantics in PyTorch,
then both graphs run alternately in one process.

    /usr/bin/python3 -m models.adpc.experiments.sparse_conv [--frames 10] [--threads 1 --clock cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from ..bench_sparse import synthetic_masks
from ..onnx_sparse import rbf_support, support_radius
from .fused_epilogue import Runtime, build_library, interleaved_ms

LAYERS = 4
SHAPES = ((18, 128, 256), (36, 64, 128), (72, 32, 64))  # W18-Small-v2 branches at 512x1024
LAMBDA = 3.0  # the cut support keeps the 8 neighbours


def _info(name: str, shape: list, dtype: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def dense_graph(ws: list[np.ndarray], bs: list[np.ndarray], h: int, w: int) -> onnx.ModelProto:
    c = ws[0].shape[0]
    nodes, inits, prev = [], [], "x"
    for i, (wt, b) in enumerate(zip(ws, bs)):
        inits += [numpy_helper.from_array(wt, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"y{i}"])]
        prev = f"y{i}"
    g = helper.make_graph(nodes, "dense", [_info("x", [1, c, h, w])], [_info(prev, [1, c, h, w])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)], ir_version=8)


def sparse_graph(ws: list[np.ndarray], bs: list[np.ndarray], h: int, w: int, taps: np.ndarray,
                 tap_w: np.ndarray) -> onnx.ModelProto:
    c = ws[0].shape[0]
    cop = -(-c // 16) * 16 if c <= 32 else -(-c // 48) * 48  # sparse_conv.c's blocking
    inits = [numpy_helper.from_array(taps, "taps"), numpy_helper.from_array(tap_w, "tap_w")]
    nodes, prev = [], "x"
    for i, (wt, b) in enumerate(zip(ws, bs)):
        wm = np.zeros((9 * c, cop), np.float32)
        wm[:, :c] = wt.transpose(2, 3, 1, 0).reshape(9 * c, c)
        sh = np.zeros(cop, np.float32)
        sh[:c] = b
        inits += [numpy_helper.from_array(wm, f"w{i}"), numpy_helper.from_array(sh, f"b{i}")]
        nodes.append(helper.make_node("MaskedConv3x3Rows", [prev, f"w{i}", f"b{i}", "index", "mask", "band", "taps",
                                                            "tap_w"], [f"y{i}"], domain="adpc", relu=1, channels=c))
        prev = f"y{i}"
    ins = [_info("x", [1, h, w, c]), _info("index", ["n"], TensorProto.INT64), _info("mask", [h * w]),
           _info("band", ["b"], TensorProto.INT64)]
    g = helper.make_graph(nodes, "sparse", ins, [_info(prev, [1, h, w, c])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 16), helper.make_opsetid("adpc", 1)],
                             ir_version=8)


def reference(x: np.ndarray, ws, bs, mask: np.ndarray, offs, tap_w: np.ndarray) -> np.ndarray:
    """The masked semantics in PyTorch: conv, then y at computed pixels and
    shift + fill(m * (y - shift)) elsewhere, then ReLU, layer after layer."""
    r = support_radius(offs)
    kernel = torch.zeros(1, 1, 2 * r + 1, 2 * r + 1)
    for (dy, dx), v in zip(offs, tap_w):
        kernel[0, 0, r + dy, r + dx] = float(v)
    t, m = torch.from_numpy(x), torch.from_numpy(mask)[None, None]
    for wt, b in zip(ws, bs):
        y = F.conv2d(t, torch.from_numpy(wt), torch.from_numpy(b), padding=1)
        sh = torch.from_numpy(b)[None, :, None, None]
        k = kernel.expand(wt.shape[0], 1, -1, -1).contiguous()
        t = torch.relu(torch.where(m > 0, y, sh + F.conv2d((y - sh) * m, k, padding=r, groups=wt.shape[0])))
    return t.numpy()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.experiments.sparse_conv",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    p.add_argument("--active", default="1,0.82,0.63,0.38", help="computed fractions to time")
    args = p.parse_args(argv)
    if "avx512f" not in Path("/proc/cpuinfo").read_text():
        p.error("sparse_conv.c needs a CPU with AVX-512")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    offs, tap_w = rbf_support(LAMBDA)
    taps = np.array(offs, np.int64).reshape(-1, 2)
    radius = support_radius(offs)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="sparse-conv-") as d:
        tmp = Path(d)
        rt = Runtime(build_library(tmp, "sparse_conv.c"), args.threads)
        print(f"load {os.getloadavg()[0]:.2f}; {LAYERS} layers of 3x3 conv + ReLU, threads {args.threads}, "
              f"clock {args.clock}", flush=True)
        for c, h, w in SHAPES:
            ws = [(rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32) for _ in range(LAYERS)]
            bs = [(0.1 * rng.standard_normal(c)).astype(np.float32) for _ in range(LAYERS)]
            onnx.save(dense_graph(ws, bs, h, w), str(tmp / "dense.onnx"))
            onnx.save(sparse_graph(ws, bs, h, w, taps, tap_w), str(tmp / "sparse.onnx"))
            dense, sparse = rt.session(tmp / "dense.onnx"), rt.session(tmp / "sparse.onnx")
            out = f"y{LAYERS - 1}"
            x = rng.standard_normal((1, c, h, w)).astype(np.float32)
            for a in (float(v) for v in args.active.split(",")):
                mask = synthetic_masks(h, w, (a,), 1)[0].astype(np.float32)
                near = F.max_pool2d(torch.from_numpy(mask)[None, None], 2 * radius + 1, 1, radius)[0, 0].numpy()
                feeds = {"x": np.ascontiguousarray(x.transpose(0, 2, 3, 1)), "index": np.flatnonzero(mask),
                         "mask": mask.ravel(), "band": np.flatnonzero((near > 0) & (mask == 0))}
                got = sparse.run(feeds, {out: (1, h, w, c)})[out].transpose(0, 3, 1, 2)
                ref = reference(x, ws, bs, mask, offs, tap_w)
                err = float(np.abs(got - ref).max() / np.abs(ref).max())
                med = interleaved_ms({"dense": lambda: dense.run({"x": x}, {out: (1, c, h, w)}),
                                      "sparse": lambda: sparse.run(feeds, {out: (1, h, w, c)})}, args.frames, clock)
                d, s = med["dense"], med["sparse"]
                print(f"C={c} {h}x{w} computed {a}: dense {d:.2f} ms, sparse {s:.2f} ms ({s / d:.2f}x), "
                      f"max |diff| / max |ref| {err:.1e}", flush=True)
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
