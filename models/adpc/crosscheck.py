"""Cross-check: the PyTorch model against a bundle runner (the Go binary, or
ONNX Runtime through ctypes) for every configuration x variant.

    python3 -m models.adpc.crosscheck --edge bin/edge      # the acceptance test
    python3 -m models.adpc.crosscheck --runner ort         # no Go binary: ORT via ctypes

For each arch (W48 at 128x256, W18-Small at 256x512) and variant (ee, rh,
adpc; adpc both as masked stages and as sparse stages, the latter through
the runner's sparse and dense dispatch): random weights (models.adpc.init)
and a random input; a threshold is chosen so that 20-80% of the adpc model's pixels end frozen and no
confidence lies within 3e-6 of it; each bundle is exported and run at that
threshold; merged logits of every exit must agree within 1e-4 relative L2
and masks must be identical except pixels whose confidence is within 1e-6 of
the threshold (at most 0.01%). ee and rh have dense stages only, so nothing
freezes there. Edge cases on the adpc bundle: threshold 1.0 gives the rh
outputs; threshold 0.05 (< 1/19) gives exits 2-4 equal to exit 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import anytime
from .build import build, rh_twin
from .export import export
from .hrnet import ADPCHRNet
from .init import random_image
from .labels import CITYSCAPES

CASES = {"hrnet_w48": (128, 256), "hrnet_w18_small_v2": (256, 512)}
SEED = 3
REL_L2 = 1e-4
MASK_EPS = 1e-6
MASK_MARGIN = 3e-6  # chosen thresholds keep every confidence this far away
MAX_FLIPS = 1e-4  # fraction of pixels
FROZEN_RANGE = (0.2, 0.8)
LOW_THRESHOLD = 0.05

# A runner runs a bundle on an input at a threshold (work: scratch directory;
# dispatch: how sparse stages run: "sparse", "masked" (the reference graph) or
# "dense" (the dense graph where a mask is all ones, else the masked one; the
# edge runner's --dispatch dense does both)) and returns (merged logits, masks).
Runner = Callable[..., tuple[list[np.ndarray], list[np.ndarray]]]


class Failure(AssertionError):
    pass


def edge_runner(binary: str) -> Runner:
    def run(bundle: Path, x: np.ndarray, threshold: float, work: Path,
            dispatch: str = "sparse") -> tuple[list[np.ndarray], list[np.ndarray]]:
        xp = work / "x.npy"
        np.save(xp, x.astype("<f4"))
        dump = work / "dump"
        shutil.rmtree(dump, ignore_errors=True)
        # Sparse stages run the path `dispatch` forces (not the one the
        # auto dispatcher may prefer), so that the check covers it.
        cmd = [binary, "infer", "--bundle", str(bundle), "--providers", "cpu", "--threshold", repr(threshold),
               "--dispatch", "dense" if dispatch == "masked" else dispatch, "--tensor", str(xp), "--dump", str(dump)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr[-2000:]}")
        return read_dump(dump, 4)
    return run


def ort_runner() -> Runner:
    from .bundle_run import run_bundle
    from .ort import Runtime
    rt = Runtime()

    def run(bundle: Path, x: np.ndarray, threshold: float, work: Path,
            dispatch: str = "sparse") -> tuple[list[np.ndarray], list[np.ndarray]]:
        return run_bundle(bundle, x, threshold, rt, path=dispatch)
    return run


def read_dump(d: Path, exits: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The exits that ran (a runtime may halt early) and their masks."""
    logits, masks = [], []
    for k in range(1, exits + 1):
        f = d / f"exit{k}_logits.npy"
        if not f.exists():
            if k == 1:
                raise Failure(f"{f} missing")
            break
        logits.append(np.load(f))
        m = d / f"exit{k}_mask.npy"
        if k < exits and m.exists():
            masks.append(np.load(m))
    return logits, masks


@dataclass
class Torch:
    merged: list[np.ndarray]
    masks: list[np.ndarray]  # uint8 [h, w]
    confs: list[np.ndarray]  # conf of merged exits 1..3, [h, w]
    raw: tuple[np.ndarray, ...] = ()  # each exit's own logits


def torch_run(model: ADPCHRNet, x: np.ndarray, threshold: Optional[float]) -> Torch:
    r = anytime.run(model, torch.from_numpy(x), threshold)
    return Torch([m.numpy() for m in r.merged], [m[0, 0].numpy().astype(np.uint8) for m in r.masks],
                 [anytime.max_softmax(m)[0, 0].numpy() for m in r.merged[:-1]], tuple(m.numpy() for m in r.raw))


def frozen_fraction(t: Torch) -> float:
    return 1.0 - float(t.masks[-1].mean())


def exit1_confidence(model: ADPCHRNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        _, logits = model.stage(1, [torch.from_numpy(x)])
    return anytime.max_softmax(logits)[0, 0].numpy()


def choose_threshold(model: ADPCHRNet, x: np.ndarray, conf1: np.ndarray) -> tuple[float, Torch]:
    """A threshold with 20-80% of pixels frozen after the last mask and no
    confidence of exits 1-3 within MASK_MARGIN of it. Candidates sit in the
    widest gap between exit-1 confidences near a quantile, so exit 1 never
    needs a retry; usually the first candidate is taken (one full run)."""
    s = np.unique(conf1.ravel())
    q, lo, hi = 0.6, 0.0, 1.0  # quantile of exit-1 confidence; higher q freezes fewer pixels
    for attempt in range(10):
        i = int(q * (len(s) - 2))
        a, b = max(0, i - 16), min(len(s) - 1, i + 16)
        j = a + int(np.argmax(np.diff(s[a:b + 1])))
        t = float((s[j] + s[j + 1]) / 2)
        res = torch_run(model, x, t)
        f = frozen_fraction(res)
        if f > FROZEN_RANGE[1] - 0.1:
            lo, q = q, (q + hi) / 2
        elif f < FROZEN_RANGE[0] + 0.1:
            hi, q = q, (lo + q) / 2
        elif min(float(np.abs(c - t).min()) for c in res.confs) >= MASK_MARGIN:
            return t, res
        else:
            q = min(max(q + (0.02 if attempt % 2 else -0.02), 0.0), 1.0)
    raise Failure("no threshold with 20-80% frozen pixels and a clear margin")


def compare(name: str, want: Torch, got: tuple[list[np.ndarray], list[np.ndarray]], threshold: float) -> list[str]:
    logits, masks = got
    lines = []
    if len(logits) != len(want.merged) or len(masks) != len(want.masks):
        raise Failure(f"{name}: {len(logits)} exits, want {len(want.merged)}")
    for k, (g, w) in enumerate(zip(logits, want.merged), start=1):
        if g.shape != w.shape or g.dtype != np.float32:
            raise Failure(f"{name}: exit {k} logits {g.dtype} {g.shape}, want float32 {w.shape}")
        rel = float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30))
        if not rel <= REL_L2:
            raise Failure(f"{name}: exit {k} relative L2 {rel:.3g} > {REL_L2}")
        lines.append(f"exit{k} relL2 {rel:.2e}")
    for k, (g, w) in enumerate(zip(masks, want.masks), start=1):
        if g.shape != w.shape or g.dtype != np.uint8:
            raise Failure(f"{name}: exit {k} mask {g.dtype} {g.shape}, want uint8 {w.shape}")
        diff = g != w
        near = (np.abs(want.confs[k - 1] - threshold) <= MASK_EPS) if want.confs else np.zeros_like(diff)
        if (diff & ~near).any() or diff.sum() > MAX_FLIPS * diff.size:
            raise Failure(f"{name}: exit {k} mask differs at {int(diff.sum())} pixels "
                          f"({int((diff & ~near).sum())} not within {MASK_EPS} of the threshold)")
        lines.append(f"mask{k} flips {int(diff.sum())}")
    return lines


def check_sparse(adpc: ADPCHRNet, arch: str, x: np.ndarray, threshold: float, want: Torch, run: Runner,
                 work: Path, log: Callable[[str], None]) -> None:
    """The adpc weights as a sparse-mode bundle: at the chosen threshold its
    sparse graphs (dispatch sparse) and its masked reference graphs (dispatch
    dense: the masked graph where pixels are frozen); at threshold 1.0 (masks
    all ones) its dense graphs (dispatch dense) against the PyTorch rh forward."""
    t0 = time.time()
    h, w = x.shape[2], x.shape[3]
    bundle = work / f"{arch}-sparse"
    export(adpc, bundle, height=h, width=w, threshold=threshold, labels=CITYSCAPES,
           name=f"crosscheck-{arch}-sparse", mode="sparse")
    lines = compare(f"{arch} sparse @ {threshold:.6f}", want, run(bundle, x, threshold, work, dispatch="sparse"),
                    threshold)
    masked = compare(f"{arch} sparse bundle @ {threshold:.6f} dispatch dense (masked graphs)", want,
                     run(bundle, x, threshold, work, dispatch="masked"), threshold)
    dense = compare(f"{arch} sparse bundle @ 1.0 dispatch dense vs PyTorch rh", torch_run(rh_twin(adpc), x, 1.0),
                    run(bundle, x, 1.0, work, dispatch="dense"), 1.0)
    log(f"ok {arch} sparse threshold {threshold:.6f}: {', '.join(lines)}; masked graphs: {', '.join(masked)}; "
        f"dispatch dense @ 1.0: {', '.join(dense)} ({time.time() - t0:.1f}s)")
    shutil.rmtree(bundle)


def check_arch(arch: str, run: Runner, work: Path, log: Callable[[str], None],
               size: Optional[tuple[int, int]] = None) -> None:
    """All checks for one arch (at its CASES size unless size is given)."""
    h, w = size or CASES[arch]
    x = random_image(SEED + 100, h, w).numpy()
    adpc = build(arch, "adpc", seed=SEED)
    t0 = time.time()
    threshold, want = choose_threshold(adpc, x, exit1_confidence(adpc, x))
    adpc_bundle = work / f"{arch}-adpc"
    export(adpc, adpc_bundle, height=h, width=w, threshold=threshold, labels=CITYSCAPES,
           name=f"crosscheck-{arch}-adpc", mode="masked")
    lines = compare(f"{arch} adpc @ {threshold:.6f}", want, run(adpc_bundle, x, threshold, work), threshold)
    frozen = [round(1 - float(m.mean()), 3) for m in want.masks]
    log(f"ok {arch} adpc threshold {threshold:.6f} frozen after exits 1-3 {frozen}: {', '.join(lines)} "
        f"({time.time() - t0:.1f}s)")
    exit1 = want.merged[0]
    check_sparse(adpc, arch, x, threshold, want, run, work, log)

    # ee and rh: dense stages, the threshold freezes nothing (masks all 1,
    # each exit its own logits); run at the adpc threshold to check that.
    rh_runner: list[np.ndarray] = []
    rh_torch: Optional[Torch] = None
    for variant, model in (("rh", rh_twin(adpc)), ("ee", build(arch, "ee", seed=SEED))):
        t0 = time.time()
        want = torch_run(model, x, threshold)
        if any(m.min() != 1 for m in want.masks):
            raise Failure(f"{arch} {variant}: PyTorch froze pixels in a model without masks")
        bundle = work / f"{arch}-{variant}"
        export(model, bundle, height=h, width=w, threshold=threshold, labels=CITYSCAPES,
               name=f"crosscheck-{arch}-{variant}")
        got = run(bundle, x, threshold, work)
        lines = compare(f"{arch} {variant} @ {threshold:.6f}", want, got, threshold)
        log(f"ok {arch} {variant} (dense stages, nothing frozen): {', '.join(lines)} ({time.time() - t0:.1f}s)")
        if variant == "rh":
            rh_runner, rh_torch = got[0], want
        shutil.rmtree(bundle)
    assert rh_torch is not None

    # threshold >= 1 gives exactly the rh outputs.
    got1 = run(adpc_bundle, x, 1.0, work)
    compare(f"{arch} adpc @ 1.0 vs PyTorch rh", rh_torch, got1, 1.0)
    rel = max(float(np.linalg.norm(g - r) / np.linalg.norm(r)) for g, r in zip(got1[0], rh_runner))
    if rel > REL_L2:
        raise Failure(f"{arch}: adpc @ 1.0 vs rh bundle relative L2 {rel:.3g}")
    log(f"ok {arch} adpc @ 1.0 == rh (vs PyTorch rh within {REL_L2}, vs the rh bundle relL2 {rel:.1e})")
    # threshold < 1/19: everything frozen after exit 1; exits 2-4 are exit 1.
    logits, masks = run(adpc_bundle, x, LOW_THRESHOLD, work)
    rel1 = float(np.linalg.norm(logits[0] - exit1) / np.linalg.norm(exit1))
    if rel1 > REL_L2:
        raise Failure(f"{arch}: adpc @ {LOW_THRESHOLD} exit 1 relative L2 {rel1:.3g}")
    if not masks or any(m.max() != 0 for m in masks):
        raise Failure(f"{arch}: adpc @ {LOW_THRESHOLD}: a mask has pixels to compute (or no mask dumped)")
    # A runtime may halt once every pixel is confident: exits it did not run
    # keep exit 1's result; those it ran must equal exit 1 exactly.
    for k in range(2, len(logits) + 1):
        if not np.array_equal(logits[k - 1], logits[0]):
            raise Failure(f"{arch}: adpc @ {LOW_THRESHOLD}: exit {k} differs from exit 1")
    log(f"ok {arch} adpc @ {LOW_THRESHOLD}: masks all 0, exits 2-4 == exit 1 "
        f"({len(logits) - 1} of them run, the rest halted as all confident)")
    shutil.rmtree(adpc_bundle)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.crosscheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--edge", help="path of the edge binary (runner 'edge')")
    p.add_argument("--runner", choices=("edge", "ort"), help="default: edge if --edge is given, else ort")
    p.add_argument("--arch", action="append", choices=sorted(CASES), help="default: all")
    p.add_argument("--work", help="work directory (default: a temporary one, removed)")
    args = p.parse_args(argv)
    runner_name = args.runner or ("edge" if args.edge else "ort")
    if runner_name == "edge":
        if not args.edge:
            p.error("--runner edge needs --edge PATH")
        run = edge_runner(os.path.abspath(args.edge))
    else:
        run = ort_runner()
    torch.set_num_threads(2)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="adpc-crosscheck-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        for arch in args.arch or list(CASES):
            check_arch(arch, run, work, lambda s: print(s, flush=True))
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        return 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"PASS crosscheck ({runner_name}) in {time.time() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
