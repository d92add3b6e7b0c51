"""Runs a bundle stage by stage on ONNX Runtime (through `ort`), with the
anytime loop of docs/bundle.md in numpy: an independent second implementation of
what the Go executor does, for tests. It runs every exit (no halting).

Sparse stages run the graph `path` names: `sparse` (index tables from
`sparse_tables`, each padded with `pad` entries of -1), `masked`, or
`dense` (the dense graph where the mask is all ones, else the masked one, as
the Go runtime's --dispatch dense)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from .ort import Runtime
from . import sparse_tables


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """[1, C, h, w] -> [h, w] largest softmax probability (float32 math)."""
    z = logits[0].astype(np.float32)
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return (e.max(axis=0) / e.sum(axis=0)).astype(np.float32)


def run_bundle(bundle: str | Path, x: np.ndarray, threshold: float, rt: Optional[Runtime] = None,
               path: str = "sparse", pad: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Returns (merged logits per exit, uint8 masks fed to stages 2..K)."""
    bundle = Path(bundle)
    man = json.loads((bundle / "bundle.json").read_text())
    rt = rt or Runtime()
    h = man["input"]["shape"][2] // man["output_stride"]
    w = man["input"]["shape"][3] // man["output_stride"]
    c = len(man["labels"])
    state: dict[str, np.ndarray] = {}
    merged: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    mask: Optional[np.ndarray] = None
    for k, st in enumerate(man["stages"]):
        if k > 0:
            # A dense stage computes every pixel (as the Go executor does).
            if st["mode"] in ("masked", "sparse"):
                mask = (max_softmax(merged[-1]) <= threshold).astype(np.uint8)
            else:
                mask = np.ones(merged[-1].shape[-2:], np.uint8)
            masks.append(mask)
        feeds = {}
        file = st["file"]
        inputs = st["inputs"]
        if st["mode"] == "sparse":
            if path == "dense" and mask.all():  # type: ignore[union-attr]
                file = st["sparse"]["dense"]["file"]
                inputs = {n: s for n, s in inputs.items() if s.startswith("state:")}
            elif path in ("masked", "dense"):
                file = st["sparse"]["masked"]["file"]
                inputs = {n: s for n, s in inputs.items() if s.startswith("state:")}
                inputs[st["sparse"]["masked"]["mask"]] = "mask"
            elif path == "sparse":
                feeds.update(sparse_tables.feeds(st, mask, man["output_stride"], pad))
            else:
                raise ValueError(f"path {path!r}: want sparse, masked or dense")
        for name, src in inputs.items():
            if src == "input":
                feeds[name] = x
            elif src == "mask":
                feeds[name] = mask[None, None].astype(np.float32)  # type: ignore[index]
            elif src.startswith(("index:", "band:")):
                pass  # set above
            else:
                feeds[name] = state[src[len("state:"):]]
        sess = rt.session(bundle / file)
        outs = graph_output_shapes(bundle / file)
        if outs[st["logits"]] != [1, c, h, w]:
            raise ValueError(f"{file}: logits shape {outs[st['logits']]}, want {[1, c, h, w]}")
        res = sess.run(feeds, outs)
        state.update({n: res[n] for n in st["state"]})
        logits = res[st["logits"]]
        if k == 0:
            merged.append(logits)
        else:
            merged.append(np.where(mask[None, None] > 0, logits, merged[-1]))  # type: ignore[index]
    return merged, masks


def graph_output_shapes(path: str | Path) -> dict[str, list[int]]:
    """Static output shapes declared by an ONNX file."""
    g = onnx.load(str(path), load_external_data=False).graph
    return {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.output}
