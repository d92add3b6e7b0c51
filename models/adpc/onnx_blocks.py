"""Stage graphs of `blocks` mode (docs/bundle.md): the blocks graph, which
computes the residual blocks of the branches on a batch of gathered cells,
and its dense twin, which computes the same from the block mask.

Blocks graph, per branch of each HighResolutionModule whose cells hold the
halo of a residual block (`blocks.blockwise`, cell >= 2 pixels):

- the branch map [1, C, H, W] becomes channels-last with a 2-pixel zero
  border (the halo beyond the image) and spare zero rows below for the
  sentinel cell G (Reshape, Transpose, Pad);
- per residual block: GatherND of each entry's cell plus its 2-pixel halo
  -> [N, c+4, c+4, C] (indices made once from `blocks`: the halo comes from
  the neighbour cells' current features, or the zero border), Transpose to
  NCHW; the two convolutions run unpadded; the ring of the first one's
  output that lies outside the image (neighbour G in `neighbours`) is zeroed,
  which is the zero padding the dense second convolution sees; the centres
  go back into the map (ScatterND; padding entries write zeros below it);
- the map back to [1, C, H, W] after the branch's last block (Slice,
  Transpose, Reshape).

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

    def __init__(self, g: Graph, grid: Grid, blocks: Value, neighbours: Value, min_cell: int = HALO) -> None:
        self.g, self.grid, self.min_cell = g, grid, min_cell
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
        self.valid4 = g.op("Reshape", [self.valid.name, g.shared("shape_n111", _i64(0, 1, 1, 1))],
                           (DYN, 1, 1, 1), hint="valid4")
        self.blocks = blocks
        self._windows: dict[int, tuple[Value, Value]] = {}
        self._ring: dict[int, Value] = {}
        self._gate: dict[tuple[int, int], Value] = {}
        self._cellmask: Optional[Value] = None

    def cell(self, h: int) -> int:
        """Cell edge in pixels of a branch whose map is h rows high."""
        return self.grid.size * h // self.grid.h

    def _spread(self, per_cell: Value, lead: int, rows: int, cols: int, c: int, hint: str) -> Value:
        """[lead', 1, rows, 1, cols, 1]-shaped per-cell values -> [lead', 1, rows*c, cols*c]
        (lead 0: Reshape keeps the input's first dimension, N)."""
        g = self.g
        x = g.op("Reshape", [per_cell.name, g.shared(f"shape_cells_{lead}_{rows}x{cols}", _i64(lead, 1, rows, 1, cols, 1))],
                 (lead, 1, rows, 1, cols, 1), hint=hint)
        if c > 1:
            x = g.op("Expand", [x.name, g.shared(f"expand_{rows}x{cols}x{c}", _i64(1, 1, rows, c, cols, c))],
                     (lead, 1, rows, c, cols, c), hint=hint)
        return g.op("Reshape", [x.name, g.shared(f"shape_px_{lead}_{rows}x{cols}x{c}", _i64(lead, 1, rows * c, cols * c))],
                    (lead, 1, rows * c, cols * c), hint=hint)

    def windows(self, c: int) -> tuple[Value, Value]:
        """GatherND indices into a branch's padded channels-last map (see
        `to_padded`) for cells of c pixels: [N, c+4, c+4, 2], each entry's
        cell plus its halo, and [N, c, c, 2], its centre. The sentinel's
        cell lies below the map (row G // cols = rows), where the map's
        extra zero rows keep what padding entries write."""
        if c not in self._windows:
            g, h = self.g, HALO
            cols = g.shared("grid_cols", np.array(self.grid.cols, np.int64))
            r = g.op("Div", [self.blocks.name, cols], (DYN,), hint="cell_row")
            rc = g.op("Mul", [r.name, cols], (DYN,), hint="cell_row_start")
            col = g.op("Sub", [self.blocks.name, rc.name], (DYN,), hint="cell_col")
            both = g.op("Concat", [g.op("Unsqueeze", [v.name, g.shared("ax1", _i64(1))], (DYN, 1)).name
                                   for v in (r, col)], (DYN, 2), hint="cell_rc", axis=1)
            base = g.op("Mul", [both.name, g.shared(f"cell_px_{c}", np.array(c, np.int64))], (DYN, 2),
                        hint=f"cell_origin_{c}")
            base = g.op("Reshape", [base.name, g.shared("shape_n112", _i64(0, 1, 1, 2))], (DYN, 1, 1, 2),
                        hint=f"cell_origin_{c}")
            out = []
            for size, off, hint in ((c + 2 * h, 0, "window"), (c, h, "centre")):
                out.append(g.op("Add", [base.name, self._pixel_grid(size, off).name], (DYN, size, size, 2),
                                hint=f"{hint}_{c}"))
            self._windows[c] = (out[0], out[1])
        return self._windows[c]

    def _pixel_grid(self, size: int, off: int) -> Value:
        """int64 [1, size, size, 2]: (off + i, off + j) at [0, i, j] (made
        from Range and Expand rather than stored, to keep files small)."""
        g = self.g
        r = g.op("Range", [g.scalar(f"i64_{off}", np.int64(off)), g.scalar(f"i64_{off + size}", np.int64(off + size)),
                           g.scalar("i64_1", np.int64(1))], (size,), hint="pixels")
        full = g.shared(f"shape_grid_{size}", _i64(1, size, size, 1))
        rows = g.op("Reshape", [r.name, g.shared(f"shape_rows_{size}", _i64(1, size, 1, 1))], (1, size, 1, 1))
        cols = g.op("Reshape", [r.name, g.shared(f"shape_cols_{size}", _i64(1, 1, size, 1))], (1, 1, size, 1))
        rows = g.op("Expand", [rows.name, full], (1, size, size, 1))
        cols = g.op("Expand", [cols.name, full], (1, size, size, 1))
        return g.op("Concat", [rows.name, cols.name], (1, size, size, 2), hint="pixel_grid", axis=3)

    def ring(self, c: int) -> Value:
        """[N, 1, c+2, c+2]: 1 where a pixel of the cell plus a 1-pixel ring
        lies inside the image, 0 outside (neighbour G)."""
        if c not in self._ring:
            g = self.g
            inside = np.ones(self.grid.cells + 1, np.float32)
            inside[-1] = 0
            v = g.op("Gather", [g.shared("cell_inside", inside), self.nine.name], (DYN, 9), hint="inside", axis=0)
            full = self._spread(v, 0, 3, 3, c, f"ring{c}")
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


def to_padded(g: Graph, x: Value, c: int, name: str) -> Value:
    """[1, C, H, W] -> channels-last [H+4+c, W+4, C]: the map with a 2-pixel
    zero border (the halo beyond the image) and c more zero rows below (the
    sentinel cell's window)."""
    _, ch, hh, ww = x.shape
    t = g.op("Reshape", [x.name, g.shared(f"shape_chw_{ch}x{hh}x{ww}", _i64(ch, hh, ww))], (ch, hh, ww),
             hint=f"{name}.hwc")
    t = g.op("Transpose", [t.name], (hh, ww, ch), hint=f"{name}.hwc", perm=[1, 2, 0])
    pads = g.shared(f"pads_{c}", _i64(HALO, HALO, 0, HALO + c, HALO, 0))
    return g.op("Pad", [t.name, pads], (hh + 2 * HALO + c, ww + 2 * HALO, ch), hint=f"{name}.padded")


def from_padded(g: Graph, t: Value, hh: int, ww: int, name: str) -> Value:
    """The padded channels-last map -> [1, C, H, W]."""
    ch = t.shape[2]
    x = g.op("Slice", [t.name, g.shared("halo_start2", _i64(HALO, HALO)),
                       g.shared(f"map_end_{hh}x{ww}", _i64(HALO + hh, HALO + ww)), g.shared("ax01", _i64(0, 1))],
             (hh, ww, ch), hint=f"{name}.crop")
    x = g.op("Transpose", [x.name], (ch, hh, ww), hint=f"{name}.chw", perm=[2, 0, 1])
    return g.op("Reshape", [x.name, g.shared(f"shape_map_{ch}x{hh}x{ww}", _i64(1, ch, hh, ww))], (1, ch, hh, ww),
                hint=f"{name}.chw")


def block_on_cells(g: Graph, b: BasicBlock, padded: Value, cells: Cells, c: int, name: str) -> Value:
    """One residual block on the gathered entries; returns the updated map."""
    ch = padded.shape[2]
    h = HALO
    window, centre_at = cells.windows(c)
    x = g.op("GatherND", [padded.name, window.name], (DYN, c + 2 * h, c + 2 * h, ch), hint=f"{name}.gather")
    x = g.op("Transpose", [x.name], (DYN, ch, c + 2 * h, c + 2 * h), hint=f"{name}.nchw", perm=[0, 3, 1, 2])
    y = relu(g, batchnorm(g, b.bn1, conv_valid(g, b.conv1, x, f"{name}.conv1"), f"{name}.bn1"))
    y = g.op("Mul", [y.name, cells.ring(c).name], y.shape, hint=f"{name}.ring")
    y = batchnorm(g, b.bn2, conv_valid(g, b.conv2, y, f"{name}.conv2"), f"{name}.bn2")
    centre = g.op("Slice", [x.name, g.shared("centre_starts", _i64(h, h)),
                            g.shared(f"centre_ends_{c}", _i64(c + h, c + h)), g.shared("ax23", _i64(2, 3))],
                  (DYN, ch, c, c), hint=f"{name}.centre")
    out = relu(g, add(g, y, centre))
    out = g.op("Mul", [out.name, cells.valid4.name], out.shape, hint=f"{name}.kept")
    out = g.op("Transpose", [out.name], (DYN, c, c, ch), hint=f"{name}.nhwc", perm=[0, 2, 3, 1])
    return g.op("ScatterND", [padded.name, centre_at.name, out.name], padded.shape, hint=f"{name}.map")


def branch(g: Graph, seq, x: Value, gate, name: str) -> Value:
    """A branch of residual blocks, blockwise where the gate is the blocks
    graph's Cells and the cells hold the halo, else dense with Where."""
    _, _, h, w = x.shape
    if isinstance(gate, Cells) and blockwise(gate.cell(h), gate.min_cell):
        c = gate.cell(h)
        t = to_padded(g, x, c, name)
        for i, b in enumerate(seq):
            t = block_on_cells(g, b, t, gate, c, f"{name}.{i}")
        return from_padded(g, t, h, w, name)
    m = gate.at(h, w)
    for i, b in enumerate(seq):
        y = module(g, b, x, None, f"{name}.{i}")
        x = g.op("Where", [m.name, y.name, x.name], x.shape, hint=f"{name}.{i}.gated")
    return x


def hr_module(g: Graph, m: HighResolutionModule, xs: Sequence[Value], gate, name: str) -> list[Value]:
    ys = [branch(g, b, x, gate, f"{name}.branches.{i}") for i, (b, x) in enumerate(zip(m.branches, xs))]
    return fuse(g, m, ys, None, name)


def stage_graph(model: ADPCHRNet, k: int, inputs: Sequence[Value], grid: Grid, state_names: Sequence[str],
                dense_mask: Optional[str] = None, min_cell: int = HALO) -> onnx.ModelProto:
    """The blocks graph of stage k > 1 (inputs: states, then `blocks` and
    `neighbours`; branches with cells of at least min_cell pixels blockwise),
    or with dense_mask its dense twin (inputs: states, then the block mask
    under that name)."""
    if k < 2:
        raise ValueError("stage 1 has no blocks graph")
    g = Graph()
    extra: list[onnx.ValueInfoProto]
    if dense_mask is None:
        bl, nb = Value("blocks", (DYN,)), Value("neighbours", (DYN, 8))
        gate = Cells(g, grid, bl, nb, min_cell)
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
