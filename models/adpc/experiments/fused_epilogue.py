"""Experiment (docs/sparse.md, "What would close the gap"): would a fused
epilogue close the gap? Each dense-exact masked convolution of a sparse stage
graph keeps its Conv + BN (ORT fuses them) and replaces the mask, fill,
residual and ReLU nodes with one custom op (fused_epilogue.c, built here with
gcc). Two graphs per stage: `fused` (the default export policy, wide 3x3 and
all 1x1 convolutions as sparse rows, the rest dense with the fused epilogue)
and `fusedall` (every convolution dense with the fused epilogue). Each is
checked against the stage's masked reference graph, then timed with the
sparse, masked and dense (= `rh`) graphs in rotation (A..E, E..A, ...).

    /usr/bin/python3 -m models.adpc.experiments.fused_epilogue [--frames 7] [--lambda-range 2.1,4.1] \\
        [--threads 1 --clock cpu]

Random W18-Small-v2 weights (seed 1), 512x1024, the synthetic clustered masks
of bench_sparse at --active (default 0.82,0.63,0.38), stages 2 and 3.
"""

from __future__ import annotations

import argparse
import ctypes as C
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import onnx
import torch
from onnx import helper

from .. import onnx_sparse, ort, sparse_tables
from ..bench_sparse import synthetic_masks
from ..build import build
from ..bundle_run import graph_output_shapes
from ..config import OUTPUT_STRIDE
from ..export import export, state_names, state_shapes
from ..init import random_image
from ..labels import CITYSCAPES
from ..layers import MaskedConv2d
from ..onnx_emit import Value
from ..onnx_sparse import Emitter, NMap, rbf_support, support_radius

# Position of RegisterCustomOpsLibrary_V2 in struct OrtApi (ORT_API_VERSION 24).
_REGISTER_CUSTOM_OPS_LIBRARY_V2 = 228
HEADER_MODULE = "github.com/yalue/onnxruntime_go@v1.27.0"


def build_library(out: Path, source: str = "fused_epilogue.c") -> Path:
    """Compiles source (a C file of this directory) into a shared library
    in out with gcc; the ORT C header comes from the onnxruntime_go module
    in the Go module cache."""
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    header = Path(cache) / HEADER_MODULE
    if not (header / "onnxruntime_c_api.h").exists():
        raise FileNotFoundError(f"{header}/onnxruntime_c_api.h: run `go mod download` first")
    lib = out / f"lib{Path(source).stem}.so"
    subprocess.run(["gcc", "-O3", "-march=native", "-fPIC", "-shared", "-Wall", f"-I{header}",
                    str(Path(__file__).with_name(source)), "-o", str(lib)], check=True)
    return lib


class FusedEmitter(Emitter):
    """The sparse stage emitter with the dense convolutions' epilogue as one
    adpc.MaskedEpilogue[Res] node; every convolution dense if all_dense."""

    all_dense = False

    def conv(self, m, x, bn, relu, residual=None, name="", bn_name=""):
        if self.all_dense:
            return self.conv_dense(m, x, bn, relu, residual, name, bn_name)
        return super().conv(m, x, bn, relu, residual, name, bn_name)

    def conv_dense(self, m, x, bn, relu, residual, name, bn_name):
        g = self.g
        y, r = self.conv_bn(m, x, bn, name, bn_name)
        _, shift = self._bn(m, bn)
        offs, wts = rbf_support(float(m.Lambda.detach()))
        r.radius = max(r.radius, support_radius(offs))
        ins = [y.name, r.mask_flat(), r.band_in, g.const(f"{name}.shift_c", shift),
               g.const(f"{name}.rbf_offsets", np.array(offs, np.int64).reshape(-1, 2)), g.const(f"{name}.rbf_w", wts)]
        op = "MaskedEpilogue"
        if residual is not None:
            ins.append(self.nchw(residual).name)
            op = "MaskedEpilogueRes"
        out = g.op(op, ins, (), hint=f"{name}.epilogue", domain="adpc", relu=int(relu))
        return NMap(out.name, r.S, m.out_channels)


def interleaved_ms(calls: dict[str, Callable[[], object]], frames: int, clock: Callable[[], float]) -> dict[str, float]:
    """Median milliseconds of each call over frames rounds, the calls in
    rotation (A..Z, Z..A, ...), after one warm-up round."""
    times: dict[str, list[float]] = {tag: [] for tag in calls}
    order = list(calls)
    for frame in range(frames + 1):
        for tag in (order if frame % 2 else order[::-1]):
            t0 = clock()
            calls[tag]()
            if frame:
                times[tag].append(clock() - t0)
    return {tag: statistics.median(v) * 1e3 for tag, v in times.items()}


def fused_graph(model, k: int, height: int, width: int, all_dense: bool) -> onnx.ModelProto:
    """Stage k's sparse graph built by FusedEmitter (same inputs and outputs)."""
    values = [Value(f"x{i}", tuple(sh)) for i, sh in enumerate(state_shapes(model, k - 1, height, width))]
    emitter = type("E", (FusedEmitter,), {"all_dense": all_dense})
    plain, onnx_sparse.Emitter = onnx_sparse.Emitter, emitter
    try:
        proto, _ = onnx_sparse.stage_graph(model, k, values, state_names(model, k), height, width)
    finally:
        onnx_sparse.Emitter = plain
    proto.opset_import.append(helper.make_opsetid("adpc", 1))
    return proto


class Runtime(ort.Runtime):
    """ort.Runtime whose sessions load the custom-op library."""

    def __init__(self, lib: Path, threads: int) -> None:
        super().__init__(threads=threads)
        self._lib_path = str(lib).encode()
        self._api = C.cast(C.addressof(self._api), C.POINTER(ort._P * (_REGISTER_CUSTOM_OPS_LIBRARY_V2 + 1))).contents

    def session(self, model):
        opts = ort._P()
        self._call(ort._CREATE_SESSION_OPTIONS, [ort._PP], C.byref(opts))
        self._call(ort._SET_INTRA_OP_NUM_THREADS, [ort._P, C.c_int], opts, self._threads)
        self._call(_REGISTER_CUSTOM_OPS_LIBRARY_V2, [ort._P, C.c_char_p], opts, self._lib_path)
        sess = ort._P()
        self._call(ort._CREATE_SESSION, [ort._P, C.c_char_p, ort._P, ort._PP], self._env, str(model).encode(), opts,
                   C.byref(sess))
        return ort.Session(self, sess)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.experiments.fused_epilogue",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--active", default="0.82,0.63,0.38")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time (robust on a loaded machine with --threads 1)")
    p.add_argument("--lambda-range", help="LO,HI: each fill's lambda drawn from this range (seeded), as bench_sparse")
    args = p.parse_args(argv)
    height, width, seed = 512, 1024, 1
    active = tuple(float(v) for v in args.active.split(","))
    torch.set_num_threads(args.threads)
    model = build("hrnet_w18_small_v2", "adpc", seed=seed)
    if args.lambda_range:
        lo, hi = (float(v) for v in args.lambda_range.split(","))
        g = torch.Generator().manual_seed(seed)
        for m in model.modules():
            if isinstance(m, MaskedConv2d):
                m.Lambda.data.fill_(float(lo + (hi - lo) * torch.rand((), generator=g)))
    with tempfile.TemporaryDirectory(prefix="fused-epilogue-") as d:
        tmp = Path(d)
        man = export(model, tmp, height=height, width=width, threshold=0.998, labels=CITYSCAPES, name="fused")
        model.eval()
        rt = Runtime(build_library(tmp), args.threads)
        sessions: dict[Path, tuple] = {}
        clock = time.process_time if args.clock == "cpu" else time.perf_counter

        def run(f: Path, feeds: dict) -> dict:
            if f not in sessions:
                names = [i.name for i in onnx.load(str(f), load_external_data=False).graph.input]
                sessions[f] = (rt.session(f), graph_output_shapes(f), names)
            s, outs, names = sessions[f]
            return s.run({n: feeds[n] for n in names}, outs)

        stages = man["stages"]
        state = run(tmp / stages[0]["file"], {"image": random_image(seed + 100, height, width).numpy()})
        masks = synthetic_masks(height // OUTPUT_STRIDE, width // OUTPUT_STRIDE, active, seed)
        print(f"load {os.getloadavg()[0]:.2f}; W18-Small-v2 {height}x{width}, threads {args.threads}, clock {args.clock}, "
              f"lambda {args.lambda_range or 'init (0.8-3.0)'}", flush=True)
        for k in (2, 3):
            st = stages[k - 1]
            feeds = {n: state[src[len("state:"):]] for n, src in st["inputs"].items() if src.startswith("state:")}
            feeds.update(sparse_tables.feeds(st, masks[k - 2], OUTPUT_STRIDE))
            feeds[st["sparse"]["masked"]["mask"]] = masks[k - 2][None, None].astype(np.float32)
            graphs = {"dense": tmp / st["sparse"]["dense"]["file"], "sparse": tmp / st["file"],
                      "masked": tmp / st["sparse"]["masked"]["file"]}
            for tag, all_dense in (("fused", False), ("fusedall", True)):
                graphs[tag] = tmp / f"stage{k}.{tag}.onnx"
                onnx.save(fused_graph(model, k, height, width, all_dense), str(graphs[tag]))
            ref = run(graphs["masked"], feeds)
            for tag in ("sparse", "fused", "fusedall"):
                got = run(graphs[tag], feeds)
                err = max(float(np.abs(got[n] - ref[n]).max() / (np.abs(ref[n]).max() + 1e-12)) for n in ref)
                print(f"stage {k} {tag}: max |diff| / max |ref| against the masked graph {err:.1e}", flush=True)
            med = interleaved_ms({tag: (lambda f=f: run(f, feeds)) for tag, f in graphs.items()}, args.frames, clock)
            print(f"stage {k} at {active[k - 2]}: " + ", ".join(f"{tag} {v:.1f} ms ({v / med['dense']:.2f}x)"
                                                              for tag, v in med.items()), flush=True)
            state.update(run(graphs["dense"], feeds))
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
