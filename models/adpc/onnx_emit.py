"""Writes stage graphs as ONNX directly from the module tree (no tracing).

Each emit function mirrors the forward code of the module it handles, with
the same operations in the same order: Conv, BatchNormalization, Relu, Add,
Mul, Sub, AveragePool, Resize (bilinear, half_pixel, constant scales),
Concat and Slice (the mask taken every r-th pixel, which is PyTorch's nearest
resize for an integer ratio r). Shapes are tracked statically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .hrnet import ADPCHRNet, HighResolutionModule, HRStage
from .layers import RBF_SIZE, BasicBlock, Bottleneck, MaskedConv2d, MaskedSequential

INT64_MAX = 2**63 - 1
OPSET = 13


@dataclass(frozen=True)
class Value:
    name: str
    shape: tuple[int, ...]


class Graph:
    """Accumulates nodes and initializers of one ONNX graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._shared: dict[str, str] = {}
        self._n = 0

    def _fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, arr: np.ndarray) -> str:
        name = hint if hint not in self._names else self._fresh(hint)
        self._names.add(name)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def scalar(self, name: str, value: np.generic) -> str:
        """A 0-d constant added once under name (const would make it [1])."""
        if name not in self._shared:
            self._names.add(name)
            self.inits.append(numpy_helper.from_array(np.array(value), name))
            self._shared[name] = name
        return self._shared[name]

    def shared(self, name: str, arr: np.ndarray) -> str:
        """A small constant added once under name."""
        if name not in self._shared:
            self._shared[name] = self.const(name, arr)
        return self._shared[name]

    def op(self, op: str, inputs: Sequence[str], shape: Sequence[int], hint: str = "", out: str = "", **attrs) -> Value:
        name = out or self._fresh(hint or op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=f"{op}_{name}", **attrs))
        return Value(name, tuple(shape))


class Masks:
    """The mask input resized (once per size) for the masked convolutions."""

    def __init__(self, g: Graph, full: Value) -> None:
        self.g = g
        self.full = full
        self._at: dict[tuple[int, int], tuple[Value, Value]] = {}
        self._one = g.shared("one", np.array(1.0, dtype=np.float32))

    def at(self, h: int, w: int) -> tuple[Value, Value]:
        """(mask, 1 - mask) at h x w."""
        if (h, w) not in self._at:
            fh, fw = self.full.shape[-2:]
            if (h, w) == (fh, fw):
                m = self.full
            else:
                if fh % h or fw % w:
                    raise ValueError(f"mask {fh}x{fw} does not divide into {h}x{w}")
                g = self.g
                m = g.op("Slice", [self.full.name, g.shared("slice_starts", np.array([0, 0], np.int64)),
                                   g.shared("slice_ends", np.array([INT64_MAX, INT64_MAX], np.int64)),
                                   g.shared("slice_axes", np.array([2, 3], np.int64)),
                                   g.shared(f"slice_steps_{fh // h}x{fw // w}", np.array([fh // h, fw // w], np.int64))],
                         (1, 1, h, w), hint=f"mask_{h}x{w}")
            inv = self.g.op("Sub", [self._one, m.name], m.shape, hint=f"unmask_{h}x{w}")
            self._at[(h, w)] = (m, inv)
        return self._at[(h, w)]


def _f32(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def conv(g: Graph, m: nn.Conv2d, x: Value, masks: Optional[Masks], name: str) -> Value:
    kh, kw = m.kernel_size
    sh, sw = m.stride
    ph, pw = m.padding
    n, _, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    ins = [x.name, g.const(f"{name}.weight", _f32(m.weight))]
    if m.bias is not None:
        ins.append(g.const(f"{name}.bias", _f32(m.bias)))
    y = g.op("Conv", ins, (n, m.out_channels, oh, ow), hint=name, kernel_shape=[kh, kw], strides=[sh, sw],
             pads=[ph, pw, ph, pw], dilations=[1, 1], group=1)
    if masks is None or not isinstance(m, MaskedConv2d):
        return y
    mask, inv = masks.at(oh, ow)
    c = m.out_channels
    kernel = np.broadcast_to(_f32(m.rbf_kernel()), (c, 1, RBF_SIZE, RBF_SIZE))
    ym = g.op("Mul", [y.name, mask.name], y.shape, hint=f"{name}.kept")
    fill = g.op("Conv", [ym.name, g.const(f"{name}.rbf", kernel)], y.shape, hint=f"{name}.fill",
                kernel_shape=[RBF_SIZE, RBF_SIZE], strides=[1, 1], pads=[RBF_SIZE // 2] * 4, dilations=[1, 1],
                group=c)
    filled = g.op("Mul", [fill.name, inv.name], y.shape, hint=f"{name}.filled")
    return g.op("Add", [ym.name, filled.name], y.shape, hint=f"{name}.out")


def batchnorm(g: Graph, m: nn.BatchNorm2d, x: Value, name: str) -> Value:
    ins = [x.name] + [g.const(f"{name}.{k}", _f32(getattr(m, k)))
                      for k in ("weight", "bias", "running_mean", "running_var")]
    return g.op("BatchNormalization", ins, x.shape, hint=name, epsilon=float(m.eps))


def relu(g: Graph, x: Value) -> Value:
    return g.op("Relu", [x.name], x.shape)


def add(g: Graph, a: Value, b: Value) -> Value:
    return g.op("Add", [a.name, b.name], a.shape)


def upsample(g: Graph, x: Value, factor: int) -> Value:
    if factor == 1:
        return x
    n, c, h, w = x.shape
    scales = g.shared(f"scales_x{factor}", np.array([1, 1, factor, factor], np.float32))
    return g.op("Resize", [x.name, "", scales], (n, c, h * factor, w * factor), hint="up",
                mode="linear", coordinate_transformation_mode="half_pixel")


def module(g: Graph, m: nn.Module, x, masks: Optional[Masks], name: str):
    """Emits any module used by ADPCHRNet; x is a Value (or a list for stages)."""
    if isinstance(m, nn.Conv2d):
        return conv(g, m, x, masks, name)
    if isinstance(m, nn.BatchNorm2d):
        return batchnorm(g, m, x, name)
    if isinstance(m, nn.ReLU):
        return relu(g, x)
    if isinstance(m, nn.AvgPool2d):
        n, c, h, w = x.shape
        return g.op("AveragePool", [x.name], (n, c, h // 2, w // 2), kernel_shape=[2, 2], strides=[2, 2])
    if isinstance(m, nn.Upsample):
        if m.mode != "bilinear" or m.align_corners or float(m.scale_factor) != 2.0:
            raise ValueError(f"{name}: unsupported upsample {m}")
        return upsample(g, x, 2)
    if isinstance(m, MaskedSequential) or type(m) is nn.Sequential:
        for i, layer in enumerate(m):
            x = module(g, layer, x, masks, f"{name}.{i}")
        return x
    if isinstance(m, BasicBlock):
        out = relu(g, batchnorm(g, m.bn1, conv(g, m.conv1, x, masks, f"{name}.conv1"), f"{name}.bn1"))
        out = batchnorm(g, m.bn2, conv(g, m.conv2, out, masks, f"{name}.conv2"), f"{name}.bn2")
        return relu(g, add(g, out, x))
    if isinstance(m, Bottleneck):
        out = relu(g, batchnorm(g, m.bn1, conv(g, m.conv1, x, None, f"{name}.conv1"), f"{name}.bn1"))
        out = relu(g, batchnorm(g, m.bn2, conv(g, m.conv2, out, None, f"{name}.conv2"), f"{name}.bn2"))
        out = batchnorm(g, m.bn3, conv(g, m.conv3, out, None, f"{name}.conv3"), f"{name}.bn3")
        short = x if m.downsample is None else module(g, m.downsample, x, None, f"{name}.downsample")
        return relu(g, add(g, out, short))
    if isinstance(m, HighResolutionModule):
        xs = [module(g, b, xi, masks, f"{name}.branches.{i}") for i, (b, xi) in enumerate(zip(m.branches, x))]
        return fuse(g, m, xs, masks, name)
    if isinstance(m, HRStage):
        for i, hm in enumerate(m):
            x = module(g, hm, x, masks, f"{name}.{i}")
        return x
    raise TypeError(f"{name}: cannot emit {type(m).__name__}")


def fuse(g: Graph, m: HighResolutionModule, xs: Sequence[Value], masks: Optional[Masks], name: str) -> list[Value]:
    """The all-to-all fuse of a HighResolutionModule over its branch outputs."""
    out = []
    for i, row in enumerate(m.fuse_layers):
        y = xs[0] if i == 0 else module(g, row[0], xs[0], masks, f"{name}.fuse_layers.{i}.0")
        for j in range(1, len(xs)):
            if j == i:
                y = add(g, y, xs[j])
            elif j > i:
                y = add(g, y, upsample(g, module(g, row[j], xs[j], masks, f"{name}.fuse_layers.{i}.{j}"), 2 ** (j - i)))
            else:
                y = add(g, y, module(g, row[j], xs[j], masks, f"{name}.fuse_layers.{i}.{j}"))
        out.append(relu(g, y))
    return out


def exit_input(g: Graph, xs: Sequence[Value]) -> Value:
    ups = [upsample(g, x, 2**i) for i, x in enumerate(xs)]
    n, _, h, w = ups[0].shape
    return g.op("Concat", [u.name for u in ups], (n, sum(u.shape[1] for u in ups), h, w), hint="exit_input", axis=1)


def stage_graph(model: ADPCHRNet, k: int, inputs: Sequence[Value], mask: Optional[Value],
                state_names: Sequence[str], logits_name: str = "logits") -> onnx.ModelProto:
    """The ONNX model of stage k; inputs are the graph inputs (names, shapes)."""
    g = Graph()
    masks = Masks(g, mask) if (mask is not None and model.masked) else None
    if k == 1:
        (x,) = inputs
        x = relu(g, module(g, model.bn1, module(g, model.conv1, x, None, "conv1"), None, "bn1"))
        x = relu(g, module(g, model.bn2, module(g, model.conv2, x, None, "conv2"), None, "bn2"))
        x = module(g, model.layer1, x, None, "layer1")
        states = [x]
        logits = module(g, model.exit1, x, None, "exit1")
    else:
        tname, sname, hname = (("transition1", "stage2", "exit2"), ("transition2", "stage3", "exit3"),
                               ("transition3", "stage4", "last_layer"))[k - 2]
        trans = getattr(model, tname)
        xs = []
        for i, t in enumerate(trans):
            if i < len(inputs):
                xs.append(inputs[i] if t is None else module(g, t, inputs[i], masks, f"{tname}.{i}"))
            else:
                xs.append(module(g, t, inputs[-1], masks, f"{tname}.{i}"))
        ys = module(g, getattr(model, sname), xs, masks, sname)
        logits = module(g, getattr(model, hname), exit_input(g, ys), masks, hname)
        states = ys if state_names else []
    outputs = list(zip(state_names, states)) + [(logits_name, logits)]
    for out_name, v in outputs:
        g.nodes.append(helper.make_node("Identity", [v.name], [out_name], name=f"Identity_{out_name}"))
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))  # noqa: E731
    graph_inputs = [vi(v.name, v.shape) for v in inputs] + ([vi(mask.name, mask.shape)] if mask is not None else [])
    graph = helper.make_graph(g.nodes, f"{model.cfg.name}_{model.variant}_stage{k}", graph_inputs,
                              [vi(n, v.shape) for n, v in outputs], initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="models.adpc", ir_version=8)
