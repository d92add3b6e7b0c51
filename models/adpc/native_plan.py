"""The native plan of a sparse stage (`stageK.plan.json`, docs/bundle.md):
the stage as a flat list of ops (masked convolution with its fill,
BatchNorm, residual and ReLU; sums and concatenations of bilinearly
upsampled maps; 2x2 average pooling) that the Go runtime's own kernels
execute at the computed pixels only (engines/native).

The plan mirrors the PyTorch masked forward (layers.py, hrnet.py) op for op,
in the reference's order. Large weights are references into the stage's
shared ONNX external-data file (`stageK.weights`, written by
export.share_weights): the plan adds no second copy. Tensors stored inline in
the graphs (below export.SHARED_BYTES) are inline here too, as are the RBF
taps, cut by onnx_sparse.rbf_support like the sparse graph's.

`interpret` runs a plan with dense PyTorch ops and masks: the executable
definition of the op semantics, against which the tests hold both the plan
(equal to the stage's masked forward) and the Go executor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .hrnet import ADPCHRNet, HighResolutionModule, upsample
from .layers import BasicBlock, MaskedConv2d, MaskedSequential, Masks
from .onnx_sparse import rbf_support

FORMAT = "adpc-plan/1"
# Stride of the state input of branch i of any stage: 4 * 2^i.
BRANCH0_STRIDE = 4


class Planner:
    """Builds the plan of one stage: tensors (SSA), ops in execution order
    and weight references. `shared` maps an initializer name (the module's
    state_dict name) to its byte offset in the weights file and its bytes
    there (checked against the module's); every other tensor goes inline."""

    def __init__(self, model: ADPCHRNet, shared: Mapping[str, tuple[int, bytes]]) -> None:
        self.model = model
        self.shared = shared
        self.module_names = {id(m): n for n, m in model.named_modules()}
        self.tensors: dict[str, dict[str, int]] = {}
        self.ops: list[dict] = []
        # The module names of each conv op's convolution and BatchNorm (None
        # without one), by op index (for tests and messages).
        self.conv_modules: dict[int, tuple[str, Optional[str]]] = {}

    def tensor(self, channels: int, stride: int, name: str = "") -> str:
        name = name or f"t{len(self.tensors)}"
        if name in self.tensors:
            raise ValueError(f"plan tensor {name} defined twice")
        self.tensors[name] = {"channels": int(channels), "stride": int(stride)}
        return name

    def ref(self, module: nn.Module, attr: str) -> dict:
        """A weight reference to module.attr: an offset into the weights file
        when the graphs store it there, else its values inline."""
        name = f"{self.module_names[id(module)]}.{attr}"
        arr = getattr(module, attr).detach().cpu().numpy().astype(np.float32)
        shape = list(arr.shape)
        if name in self.shared:
            offset, stored = self.shared[name]
            if stored != arr.tobytes():
                raise ValueError(f"{name}: the weights file holds other values than the module")
            return {"offset": int(offset), "shape": shape}
        return {"values": [float(v) for v in arr.ravel()], "shape": shape}

    # -- ops -----------------------------------------------------------------------------------

    def conv(self, m: nn.Conv2d, x: str, bn: Optional[nn.BatchNorm2d], relu: bool,
             residual: Optional[str] = None) -> str:
        name = self.module_names[id(m)]
        if not isinstance(m, MaskedConv2d):
            raise TypeError(f"{name}: a sparse stage holds masked convolutions only")
        k, s = m.kernel_size[0], m.stride[0]
        if (m.kernel_size != (k, k) or k not in (1, 3) or m.stride != (s, s) or s not in (1, 2)
                or m.padding != (k // 2, k // 2) or m.dilation != (1, 1) or m.groups != 1):
            raise ValueError(f"{name}: unsupported convolution {m}")
        src = self.tensors[x]
        if src["channels"] != m.in_channels:
            raise ValueError(f"{name}: input {x} has {src['channels']} channels, want {m.in_channels}")
        out = self.tensor(m.out_channels, src["stride"] * s)
        if residual is not None and self.tensors[residual] != self.tensors[out]:
            raise ValueError(f"{name}: residual {residual} is {self.tensors[residual]}, want {self.tensors[out]}")
        offs, wts = rbf_support(float(m.Lambda.detach()))
        op = {
            "op": "conv", "in": x, "out": out, "kernel": k, "stride": s,
            "weight": self.ref(m, "weight"),
            "bias": self.ref(m, "bias") if m.bias is not None else None,
            "bn": None if bn is None else {
                "gamma": self.ref(bn, "weight"), "beta": self.ref(bn, "bias"),
                "mean": self.ref(bn, "running_mean"), "var": self.ref(bn, "running_var"), "eps": float(bn.eps)},
            "taps": [[int(dy), int(dx), float(w)] for (dy, dx), w in zip(offs, wts)],
            "residual": residual, "relu": bool(relu),
        }
        self.conv_modules[len(self.ops)] = (name, None if bn is None else self.module_names[id(bn)])
        self.ops.append(op)
        return out

    def sum(self, terms: Sequence[tuple[str, int]], relu: bool) -> str:
        """Sum of terms (tensor, upsample factor), in order, then ReLU."""
        first, f = terms[0]
        out = self.tensor(self.tensors[first]["channels"], self.tensors[first]["stride"] // f)
        for t, f in terms:
            if self.tensors[t] != {"channels": self.tensors[out]["channels"],
                                   "stride": self.tensors[out]["stride"] * f}:
                raise ValueError(f"sum: term {t} x{f} does not land on {self.tensors[out]}")
        self.ops.append({"op": "sum", "out": out, "terms": [{"in": t, "upsample": f} for t, f in terms],
                         "relu": bool(relu)})
        return out

    def concat(self, terms: Sequence[tuple[str, int]]) -> str:
        strides = {self.tensors[t]["stride"] // f for t, f in terms}
        if len(strides) != 1:
            raise ValueError(f"concat: terms land on strides {sorted(strides)}")
        out = self.tensor(sum(self.tensors[t]["channels"] for t, _ in terms), strides.pop())
        self.ops.append({"op": "concat", "out": out, "terms": [{"in": t, "upsample": f} for t, f in terms]})
        return out

    def avgpool(self, x: str) -> str:
        out = self.tensor(self.tensors[x]["channels"], self.tensors[x]["stride"] * 2)
        self.ops.append({"op": "avgpool", "in": x, "out": out})
        return out

    # -- modules ---------------------------------------------------------------------------------

    def sequence(self, seq: MaskedSequential, x: str) -> str:
        """Conv [BN] [ReLU] groups, AvgPool and Upsample layers in order."""
        layers = list(seq)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, MaskedSequential):
                x = self.sequence(layer, x)
                i += 1
            elif isinstance(layer, nn.Conv2d):
                bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d) else None
                j = i + 1 + (bn is not None)
                relu = j < len(layers) and isinstance(layers[j], nn.ReLU)
                x = self.conv(layer, x, bn, relu)
                i = j + relu
            elif isinstance(layer, nn.AvgPool2d):
                if layer.kernel_size not in (2, (2, 2)) or layer.stride not in (2, (2, 2)) or layer.padding not in (0, (0, 0)):
                    raise ValueError(f"{self.module_names[id(layer)]}: unsupported pooling {layer}")
                x = self.avgpool(x)
                i += 1
            elif isinstance(layer, nn.Upsample):
                if layer.mode != "bilinear" or layer.align_corners or float(layer.scale_factor) != 2.0:
                    raise ValueError(f"{self.module_names[id(layer)]}: unsupported upsample {layer}")
                x = self.sum([(x, 2)], relu=False)
                i += 1
            else:
                raise TypeError(f"{self.module_names.get(id(layer), '?')}: cannot plan {type(layer).__name__}")
        return x

    def block(self, b: BasicBlock, x: str) -> str:
        h = self.conv(b.conv1, x, b.bn1, True)
        return self.conv(b.conv2, h, b.bn2, True, residual=x)

    def hr_module(self, m: HighResolutionModule, xs: list[str]) -> list[str]:
        for i, branch in enumerate(m.branches):
            for b in branch:
                xs[i] = self.block(b, xs[i])
        out = []
        for i, row in enumerate(m.fuse_layers):
            terms: list[tuple[str, int]] = []
            for j, x in enumerate(xs):
                if j == i:
                    terms.append((x, 1))
                elif j > i:
                    terms.append((self.sequence(row[j], x), 2 ** (j - i)))
                else:
                    terms.append((self.sequence(row[j], x), 1))
            out.append(self.sum(terms, relu=True))
        return out

    def rename(self, old: str, new: str) -> None:
        """Renames a tensor written by an op (state outputs and logits take
        the bundle's names)."""
        if new in self.tensors:
            raise ValueError(f"plan tensor {new} defined twice")
        self.tensors = {(new if n == old else n): v for n, v in self.tensors.items()}
        swap = lambda n: new if n == old else n  # noqa: E731
        for op in self.ops:
            for key in ("in", "out", "residual"):
                if op.get(key) is not None:
                    op[key] = swap(op[key])
            for t in op.get("terms", ()):
                t["in"] = swap(t["in"])


def stage_plan(model: ADPCHRNet, k: int, inputs: Sequence[str], state: Sequence[str], weights: str,
               shared: Mapping[str, tuple[int, bytes]], logits: str = "logits") -> tuple[dict, Planner]:
    """The plan of sparse stage k > 1 of an adpc model. inputs: the stage's
    state input names (branch i at stride 4 * 2^i), state: its state output
    names, weights: the weights file name, shared: initializer name -> (byte
    offset, bytes) in it (export.share_weights). Returns the plan and its Planner (conv op -> module)."""
    if k < 2 or not model.masked:
        raise ValueError(f"stage {k}: native plans are for stages 2-4 of an adpc model")
    tname, sname, hname = (("transition1", "stage2", "exit2"), ("transition2", "stage3", "exit3"),
                           ("transition3", "stage4", "last_layer"))[k - 2]
    cfg = model.cfg
    in_channels = [cfg.stage1_channels] if k == 2 else list(cfg.stages[k - 3].channels)
    if len(inputs) != len(in_channels):
        raise ValueError(f"stage {k}: {len(inputs)} inputs, want {len(in_channels)}")
    p = Planner(model, shared)
    maps = [p.tensor(c, BRANCH0_STRIDE << i, name) for i, (name, c) in enumerate(zip(inputs, in_channels))]
    xs: list[str] = []
    for i, t in enumerate(getattr(model, tname)):
        if i < len(maps):
            xs.append(maps[i] if t is None else p.sequence(t, maps[i]))
        else:
            xs.append(p.sequence(t, maps[-1]))
    for hm in getattr(model, sname):
        xs = p.hr_module(hm, xs)
    cat = p.concat([(x, 2**i) for i, x in enumerate(xs)])
    out = p.sequence(getattr(model, hname), cat)
    if state and len(state) != len(xs):
        raise ValueError(f"stage {k}: {len(state)} state names for {len(xs)} branches")
    for old, new in zip(xs, state):
        p.rename(old, new)
    p.rename(out, logits)
    plan = {"format": FORMAT, "weights": weights, "inputs": list(inputs), "state": list(state), "logits": logits,
            "tensors": p.tensors, "ops": p.ops}
    return plan, p


def write(plan: dict, path: Path) -> None:
    """Writes a plan as compact JSON (one op per line, for diffs)."""
    head = {k: v for k, v in plan.items() if k not in ("tensors", "ops")}
    lines = ["{"] + [f"{json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('"tensors": {')
    lines.append(",\n".join(f"  {json.dumps(n)}: {json.dumps(t)}" for n, t in plan["tensors"].items()))
    lines.append("},")
    lines.append('"ops": [')
    lines.append(",\n".join(f"  {json.dumps(op)}" for op in plan["ops"]))
    lines.append("]}")
    Path(path).write_text("\n".join(lines) + "\n")


def stored_weights(bundle: Path, graphs: Sequence[str]) -> tuple[str, dict[str, tuple[int, bytes]]]:
    """The weights file of a stage's graphs in bundle and, by name, the
    offset and bytes there of each initializer they store externally (what
    export.share_weights returned when it wrote them)."""
    import onnx  # the exporter's dependency; the interpreter does not need it

    bundle = Path(bundle)
    files: set[str] = set()
    shared: dict[str, tuple[int, bytes]] = {}
    for graph in graphs:
        for t in onnx.load(str(bundle / graph), load_external_data=False).graph.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            ext = {e.key: e.value for e in t.external_data}
            files.add(ext["location"])
            offset = int(ext.get("offset", 0))
            with open(bundle / ext["location"], "rb") as f:
                f.seek(offset)
                shared[t.name] = (offset, f.read(int(ext["length"])))
    if len(files) != 1:
        raise ValueError(f"{bundle}: graphs {list(graphs)} keep external data in {sorted(files)}, want one file")
    return files.pop(), shared


def stage_graphs(st: dict) -> list[str]:
    """The graph files of a bundle stage entry (sparse stages have three)."""
    sparse = st.get("sparse", {})
    return [st["file"]] + [sparse[p]["file"] for p in ("masked", "dense") if p in sparse]


def strides(plan: dict) -> list[int]:
    """The strides at which the plan's convolutions need the mask tables."""
    return sorted({plan["tensors"][op["out"]]["stride"] for op in plan["ops"] if op["op"] == "conv"})


# -- reference interpreter ---------------------------------------------------------------------------


def load_ref(ref: dict, weights: bytes) -> Tensor:
    """The float32 tensor of a weight reference."""
    shape = [int(d) for d in ref["shape"]]
    n = int(np.prod(shape)) if shape else 1
    if "offset" in ref:
        arr = np.frombuffer(weights, "<f4", count=n, offset=int(ref["offset"]))
    else:
        arr = np.asarray(ref["values"], np.float64).astype(np.float32)
        if arr.size != n:
            raise ValueError(f"inline weight has {arr.size} values, shape {shape}")
    return torch.from_numpy(arr.reshape(shape).copy())


def interpret(plan: dict, weights: bytes, inputs: Sequence[Tensor], mask: Tensor) -> tuple[list[Tensor], Tensor]:
    """Runs a plan densely in PyTorch (NCHW): inputs in plan order, mask
    float [1, 1, H/4, W/4] (1 = computed) at stride 4. Returns the state
    outputs in plan order and the logits."""
    masks = Masks(mask)
    env: dict[str, Tensor] = dict(zip(plan["inputs"], inputs))
    height, width = BRANCH0_STRIDE * int(mask.shape[-2]), BRANCH0_STRIDE * int(mask.shape[-1])
    for op in plan["ops"]:
        kind = op["op"]
        if kind == "conv":
            w = load_ref(op["weight"], weights)
            b = load_ref(op["bias"], weights) if op["bias"] is not None else None
            y = F.conv2d(env[op["in"]], w, b, stride=op["stride"], padding=op["kernel"] // 2)
            m = masks.at(y.shape[-2], y.shape[-1])
            ym = y * m
            if op["taps"]:
                r = max(max(abs(dy), abs(dx)) for dy, dx, _ in op["taps"])
                kernel = torch.zeros(2 * r + 1, 2 * r + 1)
                for dy, dx, wt in op["taps"]:
                    kernel[r + dy, r + dx] = float(np.float32(wt))
                c = y.shape[1]
                fill = F.conv2d(ym, kernel.expand(c, 1, 2 * r + 1, 2 * r + 1), padding=r, groups=c)
            else:
                fill = torch.zeros_like(ym)
            z = ym + fill * (1 - m)
            if op["bn"] is not None:
                bn = op["bn"]
                z = F.batch_norm(z, load_ref(bn["mean"], weights), load_ref(bn["var"], weights),
                                 load_ref(bn["gamma"], weights), load_ref(bn["beta"], weights), False, 0.0, bn["eps"])
            if op["residual"] is not None:
                z = z + env[op["residual"]]
            env[op["out"]] = F.relu(z) if op["relu"] else z
        elif kind in ("sum", "concat"):
            ups = [upsample(env[t["in"]], t["upsample"]) for t in op["terms"]]
            if kind == "concat":
                env[op["out"]] = torch.cat(ups, dim=1)
            else:
                acc = ups[0]
                for u in ups[1:]:
                    acc = acc + u
                env[op["out"]] = F.relu(acc) if op["relu"] else acc
        elif kind == "avgpool":
            env[op["out"]] = F.avg_pool2d(env[op["in"]], 2, 2)
        else:
            raise ValueError(f"plan op {kind!r}: unknown")
        t = plan["tensors"][op["out"]]
        want = [1, t["channels"], height // t["stride"], width // t["stride"]]
        if list(env[op["out"]].shape) != want:
            raise ValueError(f"plan op {op['op']} -> {op['out']}: got {list(env[op['out']].shape)}, declared {want}")
    return [env[n] for n in plan["state"]], env[plan["logits"]]
