"""Stage graphs of `blocks` mode (docs/bundle.md): the blocks graph, which
computes the residual blocks of the branches on a batch of gathered cells,
and its dense twin, which computes the same from the block mask.

Blocks graph, per branch of each HighResolutionModule whose cells hold the
halo of a residual block (`blocks.blockwise`, cell >= 2 pixels):

- the branch map [1, C, H, W] is cut into a cell table T [G+1, C, c, c]
  (Reshape, Transpose; Concat of the zero cell G);
- per residual block: Gather of each entry's 3x3 neighbourhood of cells
  (neighbours and itself) -> [N, 9, C, c, c], rearranged (Reshape,
  Transpose) and cropped (Slice) to the cell plus a 2-pixel halo
  [N, C, c+4, c+4]; the two convolutions run unpadded; the ring of the first
  one's output that lies outside the image is zeroed (the zero padding the
  dense second convolution sees); the centres go back into T (ScatterND;
  padding entries write zeros into the zero cell);
- T back to [1, C, H, W] after the branch's last block.

Coarser branches (cells under 2 pixels) run densely in the same graph with
out = Where(M, F(x), x), M rebuilt from `blocks` (ScatterND on the cell
vector, Expand). Transitions, fuse layers and the exit head are dense, with
plain convolutions (no RBF fill). Only N, the number of entries, is dynamic.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from .blocks import HALO, Grid, blockwise
from .hrnet import ADPCHRNet, HighResolutionModule
from .layers import BasicBlock
from .onnx_emit import (OPSET, Graph, Masks, Value, _f32, add, batchnorm, exit_input, fuse, module, relu)

DYN = -1  # the dynamic entry count N in tracked shapes
BOOL = TensorProto.BOOL
FLOAT = TensorProto.FLOAT


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


class DenseGate:
    """The dense twin's gate: the block-mask input at each branch's size."""

    def __init__(self, g: Graph, mask: Value) -> None:
        self.g = g
        self.masks = Masks(g, mask)
        self._bool: dict[tuple[int, int], Value] = {}

    def at(self, h: int, w: int) -> Value:
        if (h, w) not in self._bool:
            m, _ = self.masks.at(h, w)
            self._bool[(h, w)] = self.g.op("Cast", [m.name], m.shape, hint=f"gate_{h}x{w}", to=BOOL)
        return self._bool[(h, w)]


class Cells:
    """Index tensors of the blocks graph, made once from `blocks` and
    `neighbours`, and the gate of its dense (coarse) branches."""

    def __init__(self, g: Graph, grid: Grid, blocks: Value, neighbours: Value) -> None:
        self.g, self.grid = g, grid
        G = grid.cells
        # [N, 9]: the 3x3 neighbourhood row-major, the entry itself in the middle.
        n4a = g.op("Slice", [neighbours.name, g.shared("s0", _i64(0)), g.shared("s4", _i64(4)),
                             g.shared("ax1", _i64(1))], (DYN, 4), hint="nb_before")
        n4b = g.op("Slice", [neighbours.name, g.shared("s4", _i64(4)), g.shared("s8", _i64(8)),
                             g.shared("ax1", _i64(1))], (DYN, 4), hint="nb_after")
        self.index = g.op("Unsqueeze", [blocks.name, g.shared("ax1", _i64(1))], (DYN, 1), hint="scatter_index")
        self.nine = g.op("Concat", [n4a.name, self.index.name, n4b.name], (DYN, 9), hint="neighbourhood", axis=1)
        real = g.op("Less", [blocks.name, g.shared("sentinel", np.array(G, np.int64))], (DYN,), hint="real")
        self.valid = g.op("Cast", [real.name], (DYN,), hint="valid", to=FLOAT)  # 1 real entry, 0 padding
        self.valid4 = g.op("Reshape", [self.valid.name, g.shared("shape_n111", _i64(-1, 1, 1, 1))],
                           (DYN, 1, 1, 1), hint="valid4")
        self._ring: dict[int, Value] = {}
        self._gate: dict[tuple[int, int], Value] = {}
        self._cellmask: Optional[Value] = None

    def cell(self, h: int) -> int:
        """Cell edge in pixels of a branch whose map is h rows high."""
        return self.grid.size * h // self.grid.h

    def _spread(self, per_cell: Value, lead: int, rows: int, cols: int, c: int, hint: str) -> Value:
        """[lead', 1, rows, 1, cols, 1]-shaped per-cell values -> [lead', 1, rows*c, cols*c]."""
        g = self.g
        x = g.op("Reshape", [per_cell.name, g.shared(f"shape_cells_{lead}_{rows}x{cols}", _i64(lead, 1, rows, 1, cols, 1))],
                 (lead, 1, rows, 1, cols, 1), hint=hint)
        if c > 1:
            x = g.op("Expand", [x.name, g.shared(f"expand_{rows}x{cols}x{c}", _i64(1, 1, rows, c, cols, c))],
                     (lead, 1, rows, c, cols, c), hint=hint)
        return g.op("Reshape", [x.name, g.shared(f"shape_px_{lead}_{rows}x{cols}x{c}", _i64(lead, 1, rows * c, cols * c))],
                    (lead, 1, rows * c, cols * c), hint=hint)

    def ring(self, c: int) -> Value:
        """[N, 1, c+2, c+2]: 1 where a pixel of the cell plus a 1-pixel ring
        lies inside the image, 0 outside (neighbour G)."""
        if c not in self._ring:
            g = self.g
            inside = np.ones(self.grid.cells + 1, np.float32)
            inside[-1] = 0
            v = g.op("Gather", [g.shared("cell_inside", inside), self.nine.name], (DYN, 9), hint="inside", axis=0)
            full = self._spread(v, -1, 3, 3, c, f"ring{c}")
            self._ring[c] = g.op("Slice", [full.name, g.shared(f"ring_starts_{c}", _i64(c - 1, c - 1)),
                                           g.shared(f"ring_ends_{c}", _i64(2 * c + 1, 2 * c + 1)),
                                           g.shared("ax23", _i64(2, 3))], (DYN, 1, c + 2, c + 2), hint=f"ring{c}")
        return self._ring[c]

    def at(self, h: int, w: int) -> Value:
        """The block mask (bool [1, 1, h, w]) of a branch run densely."""
        if (h, w) not in self._gate:
            g, grid = self.g, self.grid
            if self._cellmask is None:
                zeros = g.shared("cells_zero", np.zeros(grid.cells + 1, np.float32))
                m = g.op("ScatterND", [zeros, self.index.name, self.valid.name], (grid.cells + 1,), hint="cellmask")
                self._cellmask = g.op("Slice", [m.name, g.shared("s0", _i64(0)),
                                                g.shared("sG", _i64(grid.cells)), g.shared("ax0", _i64(0))],
                                      (grid.cells,), hint="cellmask")
            c = self.cell(h)
            m = self._spread(self._cellmask, 1, grid.rows, grid.cols, c, f"gate_{h}x{w}")
            self._gate[(h, w)] = g.op("Cast", [m.name], m.shape, hint=f"gate_{h}x{w}", to=BOOL)
        return self._gate[(h, w)]


def conv_valid(g: Graph, m, x: Value, name: str) -> Value:
    """A stride-1 convolution without padding."""
    kh, kw = m.kernel_size
    n, _, h, w = x.shape
    ins = [x.name, g.const(f"{name}.weight", _f32(m.weight))]
    if m.bias is not None:
        ins.append(g.const(f"{name}.bias", _f32(m.bias)))
    return g.op("Conv", ins, (n, m.out_channels, h - kh + 1, w - kw + 1), hint=name, kernel_shape=[kh, kw],
                strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)


def to_cells(g: Graph, x: Value, grid: Grid, c: int, name: str) -> Value:
    """[1, C, H, W] -> the cell table [G+1, C, c, c] (zero cell last)."""
    _, ch, _, _ = x.shape
    rows, cols = grid.rows, grid.cols
    t = g.op("Reshape", [x.name, g.shared(f"shape_split_{ch}x{c}", _i64(ch, rows, c, cols, c))],
             (ch, rows, c, cols, c), hint=f"{name}.split")
    t = g.op("Transpose", [t.name], (rows, cols, ch, c, c), hint=f"{name}.split", perm=[1, 3, 0, 2, 4])
    t = g.op("Reshape", [t.name, g.shared(f"shape_cells_{ch}x{c}", _i64(grid.cells, ch, c, c))],
             (grid.cells, ch, c, c), hint=f"{name}.split")
    zero = g.shared(f"zero_cell_{ch}x{c}", np.zeros((1, ch, c, c), np.float32))
    return g.op("Concat", [t.name, zero], (grid.cells + 1, ch, c, c), hint=f"{name}.table", axis=0)


def from_cells(g: Graph, t: Value, grid: Grid, c: int, name: str) -> Value:
    """The cell table [G+1, C, c, c] -> [1, C, H, W]."""
    _, ch, _, _ = t.shape
    rows, cols = grid.rows, grid.cols
    x = g.op("Slice", [t.name, g.shared("s0", _i64(0)), g.shared("sG", _i64(grid.cells)),
                       g.shared("ax0", _i64(0))], (grid.cells, ch, c, c), hint=f"{name}.join")
    x = g.op("Reshape", [x.name, g.shared(f"shape_grid_{ch}x{c}", _i64(rows, cols, ch, c, c))],
             (rows, cols, ch, c, c), hint=f"{name}.join")
    x = g.op("Transpose", [x.name], (ch, rows, c, cols, c), hint=f"{name}.join", perm=[2, 0, 3, 1, 4])
    return g.op("Reshape", [x.name, g.shared(f"shape_map_{ch}x{c}", _i64(1, ch, rows * c, cols * c))],
                (1, ch, rows * c, cols * c), hint=f"{name}.join")


def block_on_cells(g: Graph, b: BasicBlock, table: Value, cells: Cells, c: int, name: str) -> Value:
    """One residual block on the gathered entries; returns the updated table."""
    ch = table.shape[1]
    h = HALO
    nb = g.op("Gather", [table.name, cells.nine.name], (DYN, 9, ch, c, c), hint=f"{name}.gather", axis=0)
    nb = g.op("Reshape", [nb.name, g.shared(f"shape_nine_{ch}x{c}", _i64(-1, 3, 3, ch, c, c))],
              (DYN, 3, 3, ch, c, c), hint=f"{name}.gather")
    nb = g.op("Transpose", [nb.name], (DYN, ch, 3, c, 3, c), hint=f"{name}.gather", perm=[0, 3, 1, 4, 2, 5])
    nb = g.op("Reshape", [nb.name, g.shared(f"shape_hood_{ch}x{c}", _i64(-1, ch, 3 * c, 3 * c))],
              (DYN, ch, 3 * c, 3 * c), hint=f"{name}.gather")
    x = g.op("Slice", [nb.name, g.shared(f"halo_starts_{c}", _i64(c - h, c - h)),
                       g.shared(f"halo_ends_{c}", _i64(2 * c + h, 2 * c + h)), g.shared("ax23", _i64(2, 3))],
             (DYN, ch, c + 2 * h, c + 2 * h), hint=f"{name}.halo")
    y = relu(g, batchnorm(g, b.bn1, conv_valid(g, b.conv1, x, f"{name}.conv1"), f"{name}.bn1"))
    y = g.op("Mul", [y.name, cells.ring(c).name], y.shape, hint=f"{name}.ring")
    y = batchnorm(g, b.bn2, conv_valid(g, b.conv2, y, f"{name}.conv2"), f"{name}.bn2")
    centre = g.op("Slice", [x.name, g.shared("centre_starts", _i64(h, h)),
                            g.shared(f"centre_ends_{c}", _i64(c + h, c + h)), g.shared("ax23", _i64(2, 3))],
                  (DYN, ch, c, c), hint=f"{name}.centre")
    out = relu(g, add(g, y, centre))
    out = g.op("Mul", [out.name, cells.valid4.name], out.shape, hint=f"{name}.kept")
    return g.op("ScatterND", [table.name, cells.index.name, out.name], table.shape, hint=f"{name}.table")


def branch(g: Graph, seq, x: Value, gate, name: str) -> Value:
    """A branch of residual blocks, blockwise where the gate is the blocks
    graph's Cells and the cells hold the halo, else dense with Where."""
    _, _, h, w = x.shape
    if isinstance(gate, Cells) and blockwise(gate.cell(h)):
        c = gate.cell(h)
        t = to_cells(g, x, gate.grid, c, name)
        for i, b in enumerate(seq):
            t = block_on_cells(g, b, t, gate, c, f"{name}.{i}")
        return from_cells(g, t, gate.grid, c, name)
    m = gate.at(h, w)
    for i, b in enumerate(seq):
        y = module(g, b, x, None, f"{name}.{i}")
        x = g.op("Where", [m.name, y.name, x.name], x.shape, hint=f"{name}.{i}.gated")
    return x


def hr_module(g: Graph, m: HighResolutionModule, xs: Sequence[Value], gate, name: str) -> list[Value]:
    ys = [branch(g, b, x, gate, f"{name}.branches.{i}") for i, (b, x) in enumerate(zip(m.branches, xs))]
    return fuse(g, m, ys, None, name)


def stage_graph(model: ADPCHRNet, k: int, inputs: Sequence[Value], grid: Grid, state_names: Sequence[str],
                dense_mask: Optional[str] = None) -> onnx.ModelProto:
    """The blocks graph of stage k > 1 (inputs: states, then `blocks` and
    `neighbours`), or with dense_mask its dense twin (inputs: states, then
    the block mask under that name)."""
    if k < 2:
        raise ValueError("stage 1 has no blocks graph")
    g = Graph()
    extra: list[onnx.ValueInfoProto]
    if dense_mask is None:
        bl, nb = Value("blocks", (DYN,)), Value("neighbours", (DYN, 8))
        gate = Cells(g, grid, bl, nb)
        extra = [helper.make_tensor_value_info("blocks", TensorProto.INT64, ["N"]),
                 helper.make_tensor_value_info("neighbours", TensorProto.INT64, ["N", 8])]
    else:
        mv = Value(dense_mask, (1, 1, grid.h, grid.w))
        gate = DenseGate(g, mv)
        extra = [helper.make_tensor_value_info(dense_mask, FLOAT, list(mv.shape))]
    tname, sname, hname = (("transition1", "stage2", "exit2"), ("transition2", "stage3", "exit3"),
                           ("transition3", "stage4", "last_layer"))[k - 2]
    xs = []
    for i, t in enumerate(getattr(model, tname)):
        if i < len(inputs):
            xs.append(inputs[i] if t is None else module(g, t, inputs[i], None, f"{tname}.{i}"))
        else:
            xs.append(module(g, t, inputs[-1], None, f"{tname}.{i}"))
    for i, hm in enumerate(getattr(model, sname)):
        xs = hr_module(g, hm, xs, gate, f"{sname}.{i}")
    logits = module(g, getattr(model, hname), exit_input(g, xs), None, hname)
    outputs = list(zip(state_names, xs if state_names else [])) + [("logits", logits)]
    for out_name, v in outputs:
        g.nodes.append(helper.make_node("Identity", [v.name], [out_name], name=f"Identity_{out_name}"))
    vi = lambda name, shape: helper.make_tensor_value_info(name, FLOAT, list(shape))  # noqa: E731
    kind = "dense" if dense_mask else "blocks"
    graph = helper.make_graph(g.nodes, f"{model.cfg.name}_{model.variant}_stage{k}_{kind}",
                              [vi(v.name, v.shape) for v in inputs] + extra,
                              [vi(n, v.shape) for n, v in outputs], initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="models.adpc", ir_version=8)
