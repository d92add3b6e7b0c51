"""Re-export a bundle in another mode with the same weights, read back from
its own ONNX graphs (for bundles whose checkpoint is not stored, such as the
shipped zoo demos).

    python3 -m models.adpc.reexport --bundle models/zoo/fashion-seg-adpc --out DIR [--mode sparse] \
        [--sparse-min-channels 64]
    python3 -m models.adpc.reexport --bundle DIR --plans-only

`--plans-only` adds the native plan (stageK.plan.json, docs/bundle.md) to
each sparse stage of the bundle in place, its weight references into the
stage's existing weights file; graphs and weights stay byte for byte.

The model (arch and variant from `provenance`, classes from the logits) gets
every parameter and BN statistic from the initializers of the same name; the
learned RBF lambda of each masked convolution from its fill kernel
(`NAME.rbf`: the weight ratio between distance 1 and distance sqrt(2) is
exp(lambda^2)). The new manifest keeps the old one's name, task, input,
labels, keypoints, confidence and provenance; only the stages change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .config import ARCHS, OUTPUT_STRIDE
from . import native_plan
from .export import MODES, export, parse_min_channels
from .onnx_sparse import SPARSE_MIN_CHANNELS_PER_STAGE
from .hrnet import ADPCHRNet
from .labels import Label

# Files of a bundle other than its graphs, weights, native plans and manifest (kept as they are).
GRAPH_SUFFIXES = (".onnx", ".weights", ".plan.json")


def initializers(bundle: Path) -> dict[str, np.ndarray]:
    """Every initializer of every stage graph of the bundle, by name."""
    man = json.loads((bundle / "bundle.json").read_text())
    out: dict[str, np.ndarray] = {}
    for st in man["stages"]:
        for f in native_plan.stage_graphs(st):
            for t in onnx.load(str(bundle / f)).graph.initializer:
                out.setdefault(t.name, numpy_helper.to_array(t))
    return out


def lambda_from_kernel(k: np.ndarray) -> float:
    """The lambda of a normalised 7x7 RBF fill kernel ([C, 1, 7, 7] or [7, 7])."""
    k = k.reshape(-1, 7, 7)[0].astype(np.float64)
    return float(np.sqrt(np.log(k[3, 4] / k[4, 4])))


def recover(bundle: str | Path) -> ADPCHRNet:
    """The eval-mode model whose export the bundle is."""
    bundle = Path(bundle)
    man = json.loads((bundle / "bundle.json").read_text())
    prov = man.get("provenance", {})
    arch, variant = prov.get("arch"), prov.get("variant")
    if arch not in ARCHS or variant is None:
        raise ValueError(f"{bundle}/bundle.json: provenance names arch {arch!r} variant {variant!r}")
    inits = initializers(bundle)
    classes = int(inits["last_layer.3.weight"].shape[0])
    model = ADPCHRNet(ARCHS[arch], variant, classes)
    sd = model.state_dict()
    new = {}
    for name, value in sd.items():
        if name.endswith("num_batches_tracked") or name.endswith("square_dis"):
            new[name] = value
        elif name.endswith(".Lambda"):
            conv = name[: -len(".Lambda")]
            if f"{conv}.rbf" not in inits:
                raise ValueError(f"{bundle}: no fill kernel {conv}.rbf for {name}")
            new[name] = torch.tensor(lambda_from_kernel(inits[f"{conv}.rbf"]))
        elif name in inits:
            if tuple(inits[name].shape) != tuple(value.shape):
                raise ValueError(f"{bundle}: initializer {name} is {inits[name].shape}, want {tuple(value.shape)}")
            new[name] = torch.from_numpy(inits[name].copy())
        else:
            raise ValueError(f"{bundle}: no initializer {name}")
    model.load_state_dict(new)
    return model.eval()


def reexport(bundle: str | Path, out: str | Path, mode: str = "sparse",
             sparse_min_channels: int | list[int] = list(SPARSE_MIN_CHANNELS_PER_STAGE)) -> dict:
    """Writes the bundle's model in `mode` to out, with the old manifest's
    fields and every non-graph file (test sets, cards) copied."""
    bundle, out = Path(bundle), Path(out)
    old = json.loads((bundle / "bundle.json").read_text())
    model = recover(bundle)
    _, _, h, w = old["input"]["shape"]
    labels = [Label(l["name"], tuple(l["color"])) for l in old["labels"]] or [
        Label(f"c{i}", (128, 128, 128)) for i in range(model.num_classes)]
    if old["output_stride"] != OUTPUT_STRIDE:
        raise ValueError(f"{bundle}: output stride {old['output_stride']}, want {OUTPUT_STRIDE}")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        man = export(model, tmp, height=h, width=w, threshold=old["confidence"]["threshold"], labels=labels,
                     name=old["name"], checkpoint_sha256=old.get("provenance", {}).get("checkpoint_sha256", ""),
                     mode=mode, sparse_min_channels=sparse_min_channels)
        for key in ("name", "task", "input", "labels", "keypoints", "confidence"):
            if key in old:
                man[key] = old[key]
        man["provenance"] = dict(old.get("provenance", {}), **{k: man["provenance"][k]
                                                               for k in ("exporter", "torch", "opset")})
        keys = [k for k in old if k != "stages"] + ["stages"]
        man = {k: man[k] for k in keys}
        same = out.resolve() == bundle.resolve()
        if not same:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(bundle, out, ignore=lambda d, names: [n for n in names if n.endswith(GRAPH_SUFFIXES)])
        else:
            for f in bundle.iterdir():
                if f.is_file() and f.name.endswith(GRAPH_SUFFIXES):
                    f.unlink()
        for f in Path(tmp).iterdir():
            if f.name != "bundle.json":
                shutil.copy2(f, out / f.name)
        (out / "bundle.json").write_text(json.dumps(man, indent=2) + "\n")
    return man


def add_plans(bundle: str | Path) -> dict:
    """Writes the native plan of every sparse stage of the bundle next to its
    graphs, referencing the weights the graphs already store, and the
    `sparse.native` entries into bundle.json (nothing else changes)."""
    bundle = Path(bundle)
    man = json.loads((bundle / "bundle.json").read_text())
    model = recover(bundle)
    for k, st in enumerate(man["stages"], start=1):
        if st.get("mode") != "sparse":
            continue
        weights, shared = native_plan.stored_weights(bundle, native_plan.stage_graphs(st))
        inputs = [n for n, src in st["inputs"].items() if src.startswith("state:")]
        plan, _ = native_plan.stage_plan(model, k, inputs, st["state"], weights, shared, st["logits"])
        file = f"stage{k}.plan.json"
        native_plan.write(plan, bundle / file)
        st["sparse"]["native"] = {"file": file}
    (bundle / "bundle.json").write_text(json.dumps(man, indent=2) + "\n")
    return man


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.reexport", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--out", help="may be the bundle itself (rewritten in place); not with --plans-only")
    p.add_argument("--plans-only", action="store_true",
                   help="only add the native plans of the sparse stages to the bundle, in place")
    p.add_argument("--mode", choices=MODES[:2], default="sparse")
    p.add_argument("--sparse-min-channels", default=",".join(map(str, SPARSE_MIN_CHANNELS_PER_STAGE)),
                   help="as export's (default %(default)s)")
    args = p.parse_args(argv)
    if args.plans_only == bool(args.out):
        p.error("want --out DIR or --plans-only")
    if args.plans_only:
        try:
            add_plans(args.bundle)
        except (ValueError, OSError, KeyError) as e:
            print(f"reexport: {e}", file=sys.stderr)
            return 2
        print(f"wrote the native plans of {args.bundle}")
        return 0
    try:
        reexport(args.bundle, args.out, args.mode, parse_min_channels(args.sparse_min_channels))
    except (ValueError, OSError, KeyError) as e:
        print(f"reexport: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
