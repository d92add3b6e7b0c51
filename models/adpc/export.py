"""Export an ADP-C model to a bundle (docs/bundle.md): bundle.json
plus one ONNX graph per stage.

    python3 -m models.adpc.export --arch hrnet_w48 --variant adpc \
        (--checkpoint FILE | --seed N) [--height 1024 --width 2048] \
        [--threshold 0.998] [--classes cityscapes|FILE] [--name NAME] \
        [--mode sparse|masked] --out DIR

An adpc model's stages 2-4 are written by default as `sparse` stages
(docs/bundle.md, docs/sparse.md): the sparse graph (stageK.sparse.onnx), the
reference masked graph (stageK.onnx) and the dense graph (stageK.dense.onnx),
their weights stored once in stageK.weights, and the native plan
(stageK.plan.json, its weights references into stageK.weights). `--mode masked` writes the
masked graph alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import onnx
import torch

from . import EXPORTER
from .build import build, default_threshold, rh_twin
from .checkpoint import CheckpointError, sha256
from .config import ARCHS, NUM_EXITS, OUTPUT_STRIDE, VARIANTS, check_size
from .flops import count_convs, stage_macs
from .hrnet import ADPCHRNet
from .labels import Label, load as load_labels
from . import native_plan
from . import onnx_sparse
from .onnx_emit import OPSET, Value, stage_graph

MODES = ("sparse", "masked")
# Initializers at least this large go to the stage's shared weights file.
SHARED_BYTES = 1024

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def input_names(model: ADPCHRNet, k: int) -> list[str]:
    if k == 1:
        return ["image"]
    names = [f"x{i}" for i in range(model.input_counts()[k - 1])]
    return names + (["mask"] if model.masked else [])


def state_names(model: ADPCHRNet, k: int) -> list[str]:
    return [f"s{k}.b{i}" for i in range(model.state_counts()[k - 1])]


def state_shapes(model: ADPCHRNet, k: int, height: int, width: int) -> list[list[int]]:
    """Shapes of stage k's state outputs: branch i has stride 4 * 2^i."""
    if k == 1:
        return [[1, model.cfg.stage1_channels, height // 4, width // 4]]
    if k == NUM_EXITS:
        return []
    chans = model.cfg.stages[k - 2].channels
    return [[1, c, height // (4 << i), width // (4 << i)] for i, c in enumerate(chans)]


def export(model: ADPCHRNet, out: str | Path, *, height: int, width: int, threshold: float,
           labels: Sequence[Label], name: str, checkpoint_sha256: str = "", mode: str = "sparse",
           sparse_min_channels: int | Sequence[int] = onnx_sparse.SPARSE_MIN_CHANNELS_PER_STAGE,
           dense_fill_max_pixels: int = onnx_sparse.DENSE_FILL_MAX_PIXELS) -> dict:
    """Writes the bundle to out and returns the manifest. Mode `sparse`
    (adpc only; other variants fall back to `masked`): stages 2-4 as sparse
    stages (1x1 convolutions and 3x3 ones with at least sparse_min_channels
    outputs (one value, or one per stage 2, 3, 4) computed at the computed pixels only, the others densely with the
    exact mask; their fill is a depthwise convolution on maps of at most
    dense_fill_max_pixels pixels, a gather at the band pixels on larger ones); `masked`: the variant's own stages (masked for adpc, dense
    otherwise)."""
    check_size(height, width)
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: want one of {list(MODES)}")
    if len(labels) != model.num_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.num_classes} classes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    counts = count_convs(model, height, width)
    oh, ow = height // OUTPUT_STRIDE, width // OUTPUT_STRIDE
    stages = []
    for k in range(1, NUM_EXITS + 1):
        if k == 1:
            values = [Value("image", (1, 3, height, width))]
            sources = {"image": "input"}
        else:
            prev = state_names(model, k - 1)
            values = [Value(f"x{i}", tuple(shape))
                      for i, shape in enumerate(state_shapes(model, k - 1, height, width))]
            sources = {f"x{i}": f"state:{n}" for i, n in enumerate(prev)}
        file = f"stage{k}.onnx"
        outs = state_names(model, k) + ["logits"]
        if mode == "sparse" and model.masked and k > 1:
            mc = sparse_min_channels if isinstance(sparse_min_channels, int) else sparse_min_channels[k - 2]
            stages.append(_sparse_stage(model, k, values, sources, out, height, width, counts, mc,
                                        dense_fill_max_pixels))
            continue
        mask = None
        if model.masked and k > 1:
            mask = Value("mask", (1, 1, oh, ow))
            sources["mask"] = "mask"
        proto = stage_graph(model, k, values, mask, state_names(model, k))
        _check_graph(proto, file, input_names(model, k), outs)
        onnx.save(proto, str(out / file))
        stages.append({
            "name": f"stage{k}", "file": file,
            "mode": "masked" if (model.masked and k > 1) else "dense",
            "inputs": sources, "state": state_names(model, k), "logits": "logits",
            "macs": stage_macs(counts, k),
        })
    manifest = {
        "format": "anytime-bundle/1",
        "name": name,
        "task": "segmentation",
        "input": {"tensor": "image", "shape": [1, 3, height, width], "color": "rgb",
                  "scale": 1 / 255, "mean": list(MEAN), "std": list(STD)},
        "output_stride": OUTPUT_STRIDE,
        "labels": [{"name": l.name, "color": list(l.color)} for l in labels],
        "confidence": {"criterion": "max_softmax", "threshold": threshold},
        "stages": stages,
        "provenance": {"arch": model.cfg.name, "variant": model.variant,
                       "checkpoint_sha256": checkpoint_sha256, "exporter": EXPORTER,
                       "torch": torch.__version__, "opset": OPSET},
    }
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    model.train(was_training)
    return manifest


def _sparse_stage(model: ADPCHRNet, k: int, values: list[Value], sources: dict, out: Path,
                  height: int, width: int, counts: list, min_channels: int, dense_fill_max_pixels: int) -> dict:
    """Writes the three graphs of sparse stage k with their shared weights
    file and returns the stage's manifest entry."""
    states = state_names(model, k)
    outs = states + ["logits"]
    oh, ow = height // OUTPUT_STRIDE, width // OUTPUT_STRIDE
    sparse_file, masked_file, dense_file = f"stage{k}.sparse.onnx", f"stage{k}.onnx", f"stage{k}.dense.onnx"
    proto, bands = onnx_sparse.stage_graph(model, k, values, states, height, width, min_channels=min_channels,
                                           dense_fill_max_pixels=dense_fill_max_pixels)
    inputs = dict(sources)
    for s in bands:
        inputs[f"idx{s}"] = f"index:{s}"
        inputs[f"band{s}"] = f"band:{s}"
    _check_graph(proto, sparse_file, list(inputs), outs, dynamic=[n for n in inputs if n not in sources])
    masked = stage_graph(model, k, values, Value("mask", (1, 1, oh, ow)), states)
    _check_graph(masked, masked_file, [v.name for v in values] + ["mask"], outs)
    dense = stage_graph(rh_twin(model), k, values, None, states)
    _check_graph(dense, dense_file, [v.name for v in values], outs)
    weights_file, plan_file = f"stage{k}.weights", f"stage{k}.plan.json"
    shared = share_weights({sparse_file: proto, masked_file: masked, dense_file: dense}, out, weights_file)
    plan, _ = native_plan.stage_plan(model, k, [v.name for v in values], states, weights_file, shared)
    native_plan.write(plan, out / plan_file)
    return {
        "name": f"stage{k}", "file": sparse_file, "mode": "sparse",
        "inputs": inputs, "state": states, "logits": "logits",
        "macs": stage_macs(counts, k),
        "sparse": {"bands": bands, "masked": {"file": masked_file, "mask": "mask"}, "dense": {"file": dense_file},
                   "native": {"file": plan_file}},
    }


def share_weights(graphs: dict[str, onnx.ModelProto], out: Path, weights_file: str) -> dict[str, tuple[int, bytes]]:
    """Saves the graphs to out, every initializer of at least SHARED_BYTES
    stored once in weights_file (ONNX external data, 4 KiB-aligned offsets)
    and referenced by every graph holding it. Initializers of one name must
    be identical across the graphs. Returns each stored initializer's
    offset and bytes by name (the native plan's weight references)."""
    seen: dict[str, tuple[int, bytes]] = {}
    with open(out / weights_file, "wb") as f:
        for file, proto in graphs.items():
            for t in proto.graph.initializer:
                if len(t.raw_data) < SHARED_BYTES:
                    continue
                if t.name in seen:
                    if seen[t.name][1] != t.raw_data:
                        raise RuntimeError(f"{file}: initializer {t.name} differs from another graph's")
                else:
                    offset = -(-f.tell() // 4096) * 4096
                    f.seek(offset)
                    f.write(t.raw_data)
                    seen[t.name] = (offset, t.raw_data)
                offset = seen[t.name][0]
                length = len(t.raw_data)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
                del t.external_data[:]
                for key, value in (("location", weights_file), ("offset", str(offset)), ("length", str(length))):
                    entry = t.external_data.add()
                    entry.key, entry.value = key, value
            onnx.save(proto, str(out / file))
    return seen


def _check_graph(m: onnx.ModelProto, file: str, ins: list[str], outs: list[str],
                 dynamic: Sequence[str] = ()) -> None:
    """Checks the model, its input and output names, and that every value
    but the `dynamic` ones (int64, first dimension N) is static float32."""
    onnx.checker.check_model(m)
    got_in = [i.name for i in m.graph.input]
    got_out = [o.name for o in m.graph.output]
    if got_in != ins or got_out != outs:
        raise RuntimeError(f"{file}: graph inputs {got_in} outputs {got_out}, want {ins} and {outs}")
    for v in list(m.graph.input) + list(m.graph.output):
        dims = v.type.tensor_type.shape.dim
        if v.name in dynamic:
            if v.type.tensor_type.elem_type != onnx.TensorProto.INT64 or not dims[0].dim_param or any(
                    not d.HasField("dim_value") for d in dims[1:]):
                raise RuntimeError(f"{file}: {v.name} is not int64 with a symbolic first dimension, the rest static")
            continue
        if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or any(not d.HasField("dim_value") for d in dims):
            raise RuntimeError(f"{file}: {v.name} is not a static float32 tensor")


def parse_min_channels(spec: str) -> int | list[int]:
    """--sparse-min-channels: one integer, or three (stages 2, 3, 4)."""
    try:
        values = [int(v) for v in spec.split(",")]
    except ValueError:
        raise ValueError(f"--sparse-min-channels {spec!r}: want an integer or three, comma-separated") from None
    if len(values) not in (1, 3) or min(values) < 0:
        raise ValueError(f"--sparse-min-channels {spec!r}: want one or three non-negative integers")
    return values[0] if len(values) == 1 else values


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--variant", required=True, choices=VARIANTS)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official or own checkpoint (.pth)")
    src.add_argument("--seed", type=int, help="random weights from this seed")
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--threshold", type=float, help="default 0.998 for adpc, 1.0 for ee/rh")
    p.add_argument("--classes", default="cityscapes", help="cityscapes or a labels file")
    p.add_argument("--name", help="bundle name (default ARCH-VARIANT-CLASSES)")
    p.add_argument("--mode", choices=MODES, default="sparse",
                   help="adpc stages 2-4: sparse (sparse, masked and dense graphs; the default) or masked (the "
                        "reference graph alone)")
    p.add_argument("--sparse-min-channels",
                   default=",".join(map(str, onnx_sparse.SPARSE_MIN_CHANNELS_PER_STAGE)),
                   help="sparse mode: 3x3 convolutions with fewer output channels run densely (exactly) in the "
                        "sparse graph; one value or one per stage 2,3,4 (default %(default)s)")
    p.add_argument("--dense-fill-max-pixels", type=int, default=onnx_sparse.DENSE_FILL_MAX_PIXELS,
                   help="sparse mode: dense convolutions on maps up to this many pixels fill with a depthwise "
                        "convolution, on larger ones at the band pixels only (default %(default)s)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        check_size(args.height, args.width)
        min_channels = parse_min_channels(args.sparse_min_channels)
        labels = load_labels(args.classes)
        model = build(args.arch, args.variant, checkpoint=args.checkpoint, seed=args.seed,
                      num_classes=len(labels))
    except (ValueError, OSError, CheckpointError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    threshold = default_threshold(args.variant) if args.threshold is None else args.threshold
    classes = "cityscapes" if args.classes == "cityscapes" else Path(args.classes).stem
    name = args.name or f"{args.arch.replace('_', '-')}-{args.variant}-{classes}".replace(" ", "-")
    export(model, args.out, height=args.height, width=args.width, threshold=threshold, labels=labels,
           name=name, checkpoint_sha256=sha256(args.checkpoint) if args.checkpoint else "",
           mode=args.mode, sparse_min_channels=min_channels, dense_fill_max_pixels=args.dense_fill_max_pixels)
    print(f"wrote {args.out}/bundle.json and {NUM_EXITS} stage graphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
