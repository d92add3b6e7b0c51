"""Stage graphs of `sparse` mode (docs/bundle.md, design in docs/sparse.md):
the masked stage's exact outputs, with every masked convolution computed only
at the pixels its mask keeps.

Layout. Inside the graph a feature map at stride S (H x W pixels, C channels)
is channels-last, `[H*W + 2, C]`: row p = i*W + j is pixel (i, j), row H*W
is all zeros (what a convolution reads outside the image) and row H*W + 1 is
scratch (where the rows of -1 padding entries are written). The state inputs
are transposed into this layout once at stage entry and out of it at exit.

Tables (made once per stage from the runtime's `index:S` / `band:S`
inputs, arithmetic only): the 3x3 neighbour rows of each computed pixel (at
stride 1, or 2 from the finer map), the inverse map pixel -> position in the
computed list, and for each RBF support the computed-list positions around
each band pixel.

A masked convolution followed by BatchNorm, ReLU and a residual add
(`conv_rows`):

- z = Gather(neighbour rows) @ W', W' the weights with the BN scale folded
  in (in-graph from the stored weights, which the three graphs of a stage
  share): the convolution at the N computed pixels only;
- f = sum_k w_k * z[neighbour k] at the B band pixels: the RBF fill, its
  support cut where the weights fall below `rbf_support`'s bound;
- rows = Concat(z, f) + BN shift (+ residual rows) (ReLU);
- the full map (only when something reads pixels other than the computed
  ones: a 3x3 convolution, a residual, a pooling, an upsampling, an output)
  is the background everywhere else, the exact value the reference has there
  (the BN shift; relu(x + shift) for a residual), with the rows scattered in.

1x1 convolutions read only the computed rows. Upsampling (bilinear) and
average pooling run on the full maps as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import onnx
from onnx import TensorProto, helper
from torch import nn

from .hrnet import ADPCHRNet, HighResolutionModule, HRStage
from .layers import BasicBlock, MaskedConv2d, MaskedSequential, square_distances
from .onnx_emit import Graph, Value, _f32

# The RBF fill drops taps whose summed weight is at most this (docs/sparse.md).
RBF_TOLERANCE = 1e-6
# ScatterElements with reduction (the NCHW fill) needs opset 16.
SPARSE_OPSET = 16
INT64 = TensorProto.INT64


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def rbf_weights(lam: float) -> np.ndarray:
    """The normalised 7x7 RBF kernel of MaskedConv2d (float64, centre 0)."""
    d = square_distances().double().numpy()
    k = np.exp(-(lam**2) * d)
    return k / (k.sum() + 1e-5)


def rbf_support(lam: float, tol: float = RBF_TOLERANCE) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The taps of the RBF fill kept for tolerance tol: all offsets (dy, dx)
    with d^2 <= D, D the smallest squared distance such that the weights of
    the dropped taps (d^2 > D) sum to at most tol. Returns the offsets in
    increasing d^2 (row-major within one d^2) and their weights (float32).
    The fill at any pixel then differs from the full kernel's by at most
    tol * max|z| over its window."""
    k = rbf_weights(lam)
    c = k.shape[0] // 2
    offs = sorted(((dy, dx) for dy in range(-c, c + 1) for dx in range(-c, c + 1) if (dy, dx) != (0, 0)),
                  key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    d2 = np.array([dy * dy + dx * dx for dy, dx in offs])
    w = np.array([k[c + dy, c + dx] for dy, dx in offs])
    keep = len(offs)
    for D in sorted(set(d2.tolist()), reverse=True):
        # Dropping every tap with d^2 >= D: allowed while their sum stays within tol.
        if w[d2 >= D].sum() <= tol:
            keep = int((d2 < D).sum())
        else:
            break
    return offs[:keep], w[:keep].astype(np.float32)


def rbf_separable(lam: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's normalised RBF kernel on the square of `radius` as a
    row and a column factor (float32): row[dx] * col[dy] equals the kernel at
    (dy, dx) everywhere but the centre (where the reference has 0)."""
    d = square_distances().double().numpy()
    total = np.exp(-(lam**2) * d).sum() + 1e-5
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(lam**2) * t * t)
    return g.astype(np.float32), (g / total).astype(np.float32)


def support_radius(offs: Sequence[tuple[int, int]]) -> int:
    """Chebyshev radius of a set of taps (0 for none)."""
    return max((max(abs(dy), abs(dx)) for dy, dx in offs), default=0)


class Res:
    """Tables of one stride S, built lazily from its graph inputs."""

    def __init__(self, g: Graph, stride: int, h: int, w: int) -> None:
        self.g, self.S, self.H, self.W = g, stride, h, w
        self.HW = h * w
        self.idx_in = f"idx{stride}"
        self.band_in = f"band{stride}"
        self.radius = 0  # widest RBF support of a convolution here
        self._cache: dict = {}

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def safe(self, which: str) -> str:
        """The list with -1 padding read as pixel 0 (for arithmetic)."""
        src = self.idx_in if which == "idx" else self.band_in
        return self._memo(("safe", which), lambda: self.g.op(
            "Max", [src, self.g.shared("i0", _i64(0))], (), hint=f"{src}_safe").name)

    def dest(self, which: str) -> str:
        """The list with -1 padding sent to the scratch row."""
        src = self.idx_in if which == "idx" else self.band_in
        g = self.g

        def make() -> str:
            neg = g.op("Less", [src, g.shared("i0", _i64(0))], (), hint=f"{src}_pad").name
            return g.op("Where", [neg, g.shared(f"scratch{self.S}", _i64(self.HW + 1)), src], (),
                        hint=f"{src}_dest").name
        return self._memo(("dest", which), make)

    def count(self) -> str:
        """N as int64 [1]."""
        return self._memo("count", lambda: self.g.op("Shape", [self.idx_in], (), hint=f"n{self.S}").name)

    def rows_dest(self) -> str:
        """ScatterND indices [N + B + 1, 1]: computed, band, then the zero row."""
        g = self.g

        def make() -> str:
            cat = g.op("Concat", [self.dest("idx"), self.dest("band"), g.shared(f"zero_row{self.S}", _i64(self.HW))],
                       (), hint=f"rows_dest{self.S}", axis=0).name
            return g.op("Unsqueeze", [cat, g.shared("ax1", _i64(1))], (), hint=f"rows_dest{self.S}").name
        return self._memo("rows_dest", make)

    def inverse(self) -> str:
        """int64 [HW + 2]: position of each pixel in the computed list, N for
        the others (the zero row appended to the computed rows)."""
        g = self.g

        def make() -> str:
            n = self.count()
            full = g.op("Expand", [n, g.shared(f"hw2_{self.S}", _i64(self.HW + 2))], (), hint=f"inv_init{self.S}")
            pos = g.op("Range", [g.scalar("i0s", np.int64(0)),
                                 g.op("Squeeze", [n, g.shared("ax0", _i64(0))], (), hint=f"n{self.S}s").name,
                                 g.scalar("i1s", np.int64(1))], (), hint=f"pos{self.S}")
            ind = g.op("Unsqueeze", [self.dest("idx"), g.shared("ax1", _i64(1))], (), hint=f"inv_ind{self.S}")
            return g.op("ScatterND", [full.name, ind.name, pos.name], (), hint=f"inv{self.S}").name
        return self._memo("inverse", make)

    def neighbours(self, which: str, offsets: Sequence[tuple[int, int]], scale: int, origin: int,
                   fine: Optional["Res"] = None) -> str:
        """int64 [len(list), K]: for each pixel (i, j) of the list, the row of
        pixel (scale*i + dy - origin, scale*j + dx - origin) in the map of
        `fine` (default self), or that map's zero row outside it."""
        tgt = fine or self
        g = self.g
        key = ("nb", which, tuple(offsets), scale, origin, tgt.S)

        def make() -> str:
            src = self.safe(which)
            col = g.op("Unsqueeze", [src, g.shared("ax1", _i64(1))], (), hint="col")
            i = g.op("Div", [col.name, g.shared(f"w{self.S}", _i64(self.W))], (), hint="i")
            j = g.op("Mod", [col.name, g.shared(f"w{self.S}", _i64(self.W))], (), hint="j")
            if scale != 1:
                sc = g.shared(f"times{scale}", _i64(scale))
                i = g.op("Mul", [i.name, sc], (), hint="i")
                j = g.op("Mul", [j.name, sc], (), hint="j")
            dy = g.const("dy", np.array([[o[0] - origin for o in offsets]], np.int64))
            dx = g.const("dx", np.array([[o[1] - origin for o in offsets]], np.int64))
            ii = g.op("Add", [i.name, dy], (), hint="ii")
            jj = g.op("Add", [j.name, dx], (), hint="jj")
            z = g.shared("i0", _i64(0))
            ok = None
            for v, lim in ((ii, tgt.H), (jj, tgt.W)):
                lo = g.op("GreaterOrEqual", [v.name, z], (), hint="lo")
                hi = g.op("Less", [v.name, g.shared(f"lim{lim}", _i64(lim))], (), hint="hi")
                both = g.op("And", [lo.name, hi.name], (), hint="in")
                ok = both if ok is None else g.op("And", [ok.name, both.name], (), hint="in")
            flat = g.op("Add", [g.op("Mul", [ii.name, g.shared(f"w{tgt.S}", _i64(tgt.W))], (), hint="row").name,
                                jj.name], (), hint="flat")
            return g.op("Where", [ok.name, flat.name, g.shared(f"zero_row{tgt.S}", _i64(tgt.HW))], (),
                        hint=f"nb{self.S}").name  # type: ignore[union-attr]
        return self._memo(key, make)

    def fill_table(self, offsets: Sequence[tuple[int, int]]) -> str:
        """int64 [K, B]: for each tap, the positions in the computed rows (N =
        the zero row appended) of the band pixels' neighbours. Tap-major, so
        that the weighted sum over taps is one [1, K] x [K, B*C] product."""
        def make() -> str:
            nb = self.neighbours("band", offsets, 1, 0)
            t = self.g.op("Transpose", [nb], (), hint=f"fill_nb{self.S}", perm=[1, 0])
            return self.g.op("Gather", [self.inverse(), t.name], (), hint=f"fill_tab{self.S}").name
        return self._memo(("fill", tuple(offsets)), make)


    def mask_flat(self) -> str:
        """float [HW + 2]: 1 at the computed pixels (and the scratch row)."""
        g = self.g

        def make() -> str:
            ones = g.op("Expand", [g.shared("f1", np.ones(1, np.float32)), self.count()], (), hint=f"ones{self.S}")
            ind = g.op("Unsqueeze", [self.dest("idx"), g.shared("ax1", _i64(1))], (), hint=f"m_ind{self.S}")
            zeros = g.op("ConstantOfShape", [g.shared(f"hw2_{self.S}", _i64(self.HW + 2))], (), hint="zeros",
                         value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
            return g.op("ScatterND", [zeros.name, ind.name, ones.name], (), hint=f"mflat{self.S}").name
        return self._memo("mask_flat", make)

    def mask_float(self) -> str:
        """float [1, 1, H, W]: the mask at this stride."""
        g = self.g

        def make() -> str:
            body = g.op("Slice", [self.mask_flat(), g.shared("i0", _i64(0)), g.shared(f"hw{self.S}", _i64(self.HW)),
                                  g.shared("ax0", _i64(0))], (), hint=f"mbody{self.S}")
            return g.op("Reshape", [body.name, g.shared(f"shape1x1x{self.H}x{self.W}", _i64(1, 1, self.H, self.W))],
                        (), hint=f"m{self.S}").name
        return self._memo("mask_float", make)

    def mask_nchw(self) -> str:
        """bool [1, 1, H, W]: the mask at this stride."""
        return self._memo("mask_nchw", lambda: self.g.op("Cast", [self.mask_float()], (), hint=f"mbool{self.S}",
                                                         to=TensorProto.BOOL).name)

    def band_taps_nchw(self, offsets: Sequence[tuple[int, int]]) -> tuple[str, str]:
        """For the fill of a dense convolution: int64 [K, B], the pixel of
        each tap of each band pixel where that tap is a computed pixel (and
        the entry not padding), else HW (a zero row appended to the map);
        and float [K, B], 1 where the tap counts."""
        g = self.g

        def make() -> tuple[str, str]:
            nb = g.op("Transpose", [self.neighbours("band", offsets, 1, 0)], (), hint=f"bnb{self.S}", perm=[1, 0])
            computed = g.op("Gather", [self.mask_flat(), nb.name], (), hint=f"bvalid{self.S}")
            real = g.op("Cast", [g.op("GreaterOrEqual", [self.band_in, g.shared("i0", _i64(0))], (),
                                      hint="real").name], (), hint="real", to=TensorProto.FLOAT)
            valid = g.op("Mul", [computed.name, real.name], (), hint=f"bvalid{self.S}")
            ok = g.op("Cast", [valid.name], (), hint="ok", to=TensorProto.BOOL)
            pix = g.op("Where", [ok.name, nb.name, g.shared(f"zero_row{self.S}", _i64(self.HW))], (),
                       hint=f"bpix{self.S}")
            return pix.name, valid.name
        return self._memo(("band_nchw", tuple(offsets)), make)

    def band_scatter_nchw(self, c: int) -> str:
        """int64 [C, B]: the band pixels (padding read as pixel 0), per channel."""
        g = self.g

        def make() -> str:
            row = g.op("Unsqueeze", [self.safe("band"), g.shared("ax0", _i64(0))], (), hint="brow")
            shape = g.op("Concat", [g.shared(f"c{c}", _i64(c)), g.op("Shape", [self.band_in], (), hint="b").name],
                         (), hint="bshape", axis=0)
            return g.op("Expand", [row.name, shape.name], (), hint=f"bscat{self.S}").name
        return self._memo(("band_scatter", c), make)


@dataclass
class Map:
    """A full channels-last map [HW + 2, C] at stride S (row HW zero)."""

    name: str
    S: int
    C: int


@dataclass
class NMap:
    """A full NCHW map [1, C, H, W] at stride S."""

    name: str
    S: int
    C: int


def lazy(make: Callable[[], str]) -> Callable[[], str]:
    """make, called at most once: nodes emitted only if something uses them."""
    done: list[str] = []

    def get() -> str:
        if not done:
            done.append(make())
        return done[0]
    return get


@dataclass
class Rows:
    """A masked layer's result at stride S: `name`, its rows [N, C] at the
    computed pixels; `band()` its rows [B, C] at the band pixels and `bg()`
    its full map elsewhere ([HW + 2, C]), both emitted only when a consumer
    reads pixels other than the computed ones (a 1x1 convolution does not)."""

    name: str
    S: int
    C: int
    band: Callable[[], str]
    bg: Callable[[], str]


Feature = Union[Map, NMap, Rows]

# 3x3 convolutions with at least this many output channels run sparsely by
# default; narrower ones densely with the exact mask (docs/sparse.md). Stage
# 4 computes the fewest pixels (0.38 at the paper's W48 operating point), where
# every convolution pays sparsely (measured on W48 and W18-Small).
SPARSE_MIN_CHANNELS = 64
SPARSE_MIN_CHANNELS_PER_STAGE = (64, 64, 0)  # stages 2, 3, 4
# Dense convolutions on maps of at most this many pixels fill with a dense
# depthwise convolution of the cut kernel (a few nodes) instead of gathering
# the band pixels (about twenty nodes, which cost more than they save there).
DENSE_FILL_MAX_PIXELS = 4096
# Fills with more taps than this run as a dense separable filter (2 x 7 taps
# per pixel) rather than at the band pixels (K taps per band pixel).
BAND_FILL_MAX_TAPS = 12


class Emitter:
    """Emits one sparse stage graph: 1x1 convolutions and 3x3 ones with at
    least min_channels outputs run sparsely (channels-last rows), the others
    densely in NCHW with the exact mask and the fill at the band pixels only."""

    def __init__(self, model: ADPCHRNet, height: int, width: int, min_channels: int = SPARSE_MIN_CHANNELS,
                 dense_fill_max_pixels: int = DENSE_FILL_MAX_PIXELS) -> None:
        self.g = Graph()
        self.model = model
        self.height, self.width = height, width
        self.min_channels = min_channels
        self.dense_fill_max_pixels = dense_fill_max_pixels
        self.res: dict[int, Res] = {}
        self._converted: dict[tuple[str, str], Feature] = {}

    # -- resolutions and layouts --------------------------------------------------------------

    def at(self, stride: int) -> Res:
        if stride not in self.res:
            self.res[stride] = Res(self.g, stride, self.height // stride, self.width // stride)
        return self.res[stride]

    def zeros(self, rows: int, c: int) -> str:
        return self.g.shared(f"zeros{rows}x{c}", np.zeros((rows, c), np.float32))

    def enter(self, x: Value) -> NMap:
        _, c, h, _ = x.shape
        return NMap(x.name, self.height // h, c)

    def _once(self, f: Feature, kind: str, make) -> Feature:
        key = (f.name, kind)
        if key not in self._converted:
            self._converted[key] = make()
        return self._converted[key]

    def cl(self, f: Feature) -> Map:
        """The channels-last full map of a feature: an NCHW map transposed (with
        the two scratch rows), or rows scattered into their background."""
        if isinstance(f, Map):
            return f
        g = self.g
        r = self.at(f.S)
        if isinstance(f, Rows):
            def scatter() -> Map:
                upd = g.op("Concat", [f.name, f.band(), self.zeros(1, f.C)], (), hint="upd", axis=0)
                return Map(g.op("ScatterND", [f.bg(), r.rows_dest(), upd.name], (), hint="map").name, f.S, f.C)
            return self._once(f, "map", scatter)  # type: ignore[return-value]

        def transpose() -> Map:
            flat = g.op("Reshape", [f.name, g.shared(f"shape{f.C}x{r.HW}", _i64(f.C, r.HW))], (), hint="flat")
            t = g.op("Transpose", [flat.name], (), hint="cl", perm=[1, 0])
            return Map(g.op("Concat", [t.name, self.zeros(2, f.C)], (), hint="map", axis=0).name, f.S, f.C)
        return self._once(f, "cl", transpose)  # type: ignore[return-value]

    def nchw(self, f: Feature) -> NMap:
        """The NCHW map of a feature."""
        if isinstance(f, NMap):
            return f
        m = self.cl(f)
        g = self.g
        r = self.at(m.S)

        def make() -> NMap:
            body = g.op("Slice", [m.name, g.shared("i0", _i64(0)), g.shared(f"hw{m.S}", _i64(r.HW)),
                                  g.shared("ax0", _i64(0))], (), hint="body")
            t = g.op("Transpose", [body.name], (), hint="chw", perm=[1, 0])
            return NMap(g.op("Reshape", [t.name, g.shared(f"shape1x{m.C}x{r.H}x{r.W}", _i64(1, m.C, r.H, r.W))],
                             (), hint="nchw").name, m.S, m.C)
        return self._once(m, "nchw", make)  # type: ignore[return-value]

    def leave(self, f: Feature, out: str) -> None:
        """Feature -> NCHW graph output `out`."""
        self.g.op("Identity", [self.nchw(f).name], (), out=out)

    def computed_rows(self, f: Feature, stride: int) -> str:
        """[N, C] of a feature at the computed pixels of its stride."""
        g = self.g
        r = self.at(stride)
        if isinstance(f, Rows):
            return f.name
        if isinstance(f, NMap):
            flat = g.op("Reshape", [f.name, g.shared(f"shape{f.C}x{r.HW}", _i64(f.C, r.HW))], (), hint="flat")
            cols = g.op("Gather", [flat.name, r.safe("idx")], (), hint="cols", axis=1)
            return g.op("Transpose", [cols.name], (), hint="comp", perm=[1, 0]).name
        return g.op("Gather", [f.name, r.safe("idx")], (), hint="comp", axis=0).name

    # -- layers -------------------------------------------------------------------------------

    def conv(self, m: nn.Conv2d, x: Feature, bn: Optional[nn.BatchNorm2d], relu: bool,
             residual: Optional[Feature] = None, name: str = "", bn_name: str = "") -> Feature:
        """A masked convolution (module name `name`) with its BatchNorm
        (`bn_name`), ReLU and residual add: sparse for 1x1 convolutions and
        3x3 ones with at least min_channels outputs (gathering 9 * Cin floats
        per pixel pays for 9 * Cin * Cout MACs only when Cout is large), dense
        for the others."""
        if not isinstance(m, MaskedConv2d):
            raise TypeError(f"{name}: sparse stages hold masked convolutions only")
        if m.kernel_size == (1, 1) or m.out_channels >= self.min_channels:
            return self.conv_rows(m, x, bn, relu, residual, name)
        return self.conv_dense(m, x, bn, relu, residual, name, bn_name)

    @staticmethod
    def _bn(m: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> tuple[np.ndarray, np.ndarray]:
        """The BN's scale and shift (1 and 0 without one)."""
        cout = m.out_channels
        if bn is None:
            return np.ones(cout, np.float32), np.zeros(cout, np.float32)
        scale = (_f32(bn.weight) / np.sqrt(_f32(bn.running_var) + np.float32(bn.eps))).astype(np.float32)
        return scale, (_f32(bn.bias) - _f32(bn.running_mean) * scale).astype(np.float32)

    def conv_bn(self, m: nn.Conv2d, x: Feature, bn: Optional[nn.BatchNorm2d], name: str,
                bn_name: str) -> tuple[Value, Res]:
        """The dense NCHW Conv and BN nodes of a convolution, as the dense
        graph has them (ORT fuses them), and the tables of its output stride."""
        g = self.g
        xn = self.nchw(x)
        kh, kw = m.kernel_size
        s, p = m.stride[0], m.padding[0]
        ins = [xn.name, g.const(f"{name}.weight", _f32(m.weight))]
        if m.bias is not None:
            ins.append(g.const(f"{name}.bias", _f32(m.bias)))
        y = g.op("Conv", ins, (), hint=name, kernel_shape=[kh, kw], strides=[s, s], pads=[p, p, p, p],
                 dilations=[1, 1], group=1)
        if bn is not None:
            y = g.op("BatchNormalization", [y.name] + [g.const(f"{bn_name}.{k}", _f32(getattr(bn, k)))
                                                       for k in ("weight", "bias", "running_mean", "running_var")],
                     (), hint=f"{name}.bn", epsilon=float(bn.eps))
        return y, self.at(xn.S * s)

    def conv_dense(self, m: nn.Conv2d, x: Feature, bn: Optional[nn.BatchNorm2d], relu: bool,
                   residual: Optional[Feature], name: str, bn_name: str) -> NMap:
        """Dense NCHW: Conv and BN as the dense graph (ORT fuses them), then
        the mask applied exactly: the BN shift at frozen pixels, plus the
        fill at the band pixels (a scatter-add of a few taps each)."""
        g = self.g
        y, r = self.conv_bn(m, x, bn, name, bn_name)
        cout = m.out_channels
        _, shift = self._bn(m, bn)
        shift4 = g.const(f"{name}.shift", shift.reshape(1, cout, 1, 1))
        offs, wts = rbf_support(float(m.Lambda.detach()))
        r.radius = max(r.radius, support_radius(offs))
        dense_fill = bool(offs) and (r.HW <= self.dense_fill_max_pixels or len(offs) > BAND_FILL_MAX_TAPS)
        if dense_fill:
            # out = Where(M, y', shift + F(M * (y' - shift))), F the fill as a
            # dense depthwise filter: the cut kernel at radius 1; at larger
            # radii the reference's Gaussian, separable, as a row then a column
            # pass over the square of that radius (its centre tap meets only
            # zeros at frozen pixels, and computed ones take y').
            rad = support_radius(offs)
            z = g.op("Sub", [y.name, shift4], (), hint=f"{name}.z")
            zm = g.op("Mul", [z.name, r.mask_float()], (), hint=f"{name}.kept")
            if rad == 1:
                kernel = np.zeros((3, 3), np.float32)
                for (dy, dx), wt in zip(offs, wts):
                    kernel[1 + dy, 1 + dx] = wt
                fill = self.depthwise(zm.name, kernel, cout, shift, f"{name}.fill")
            else:
                row, col = rbf_separable(float(m.Lambda.detach()), rad)
                h = self.depthwise(zm.name, row.reshape(1, -1), cout, None, f"{name}.fill_rows")
                fill = self.depthwise(h, col.reshape(-1, 1), cout, shift, f"{name}.fill")
            out = g.op("Where", [r.mask_nchw(), y.name, fill], (), hint=f"{name}.masked").name
        else:
            out = g.op("Where", [r.mask_nchw(), y.name, shift4], (), hint=f"{name}.masked").name
        if offs and not dense_fill:
            # The fill reads whole rows (channels-last, a zero row appended):
            # fill = sum_k w_k BN(y)[tap k] over the computed taps, and the
            # reference's BN(fill of y) = fill - shift * sum w + shift, the
            # frozen pixel already holding shift.
            pix, valid = r.band_taps_nchw(offs)
            flat_y = g.op("Reshape", [y.name, g.shared(f"shape{cout}x{r.HW}", _i64(cout, r.HW))], (), hint="flat")
            rows_y = g.op("Transpose", [flat_y.name], (), hint=f"{name}.cl", perm=[1, 0])
            table = g.op("Concat", [rows_y.name, self.zeros(1, cout)], (), hint=f"{name}.cl", axis=0)
            taps = g.op("Gather", [table.name, pix], (), hint=f"{name}.taps", axis=0)  # [K, B, C]
            tflat = g.op("Reshape", [taps.name, g.shared(f"shape{len(offs)}x-1", _i64(len(offs), -1))], (),
                         hint=f"{name}.taps")
            wk = g.const(f"{name}.rbf_taps", wts.reshape(1, -1))
            fill = g.op("MatMul", [wk, tflat.name], (), hint=f"{name}.fill")  # [1, B*C]
            fill = g.op("Reshape", [fill.name, g.shared(f"shape-1x{cout}", _i64(-1, cout))], (), hint=f"{name}.fill")
            wsum = g.op("MatMul", [wk, valid], (), hint=f"{name}.wsum")  # [1, B]
            wcol = g.op("Transpose", [wsum.name], (), hint=f"{name}.wsum", perm=[1, 0])
            corr = g.op("Mul", [wcol.name, g.const(f"{name}.shift_row", shift.reshape(1, cout))], (), hint="corr")
            upd = g.op("Sub", [fill.name, corr.name], (), hint=f"{name}.upd")
            upd = g.op("Transpose", [upd.name], (), hint=f"{name}.upd", perm=[1, 0])  # [C, B]
            flat = g.op("Reshape", [out, g.shared(f"shape{cout}x{r.HW}", _i64(cout, r.HW))], (), hint="flat")
            added = g.op("ScatterElements", [flat.name, r.band_scatter_nchw(cout), upd.name], (),
                         hint=f"{name}.filled", axis=1, reduction="add")
            out = g.op("Reshape", [added.name, g.shared(f"shape1x{cout}x{r.H}x{r.W}", _i64(1, cout, r.H, r.W))],
                       (), hint=f"{name}.out").name
        if residual is not None:
            out = g.op("Add", [out, self.nchw(residual).name], (), hint=f"{name}.sum").name
        if relu:
            out = g.op("Relu", [out], (), hint=f"{name}.relu").name
        return NMap(out, r.S, cout)

    def conv_rows(self, m: nn.Conv2d, x: Feature, bn: Optional[nn.BatchNorm2d], relu: bool,
                  residual: Optional[Feature], name: str) -> Rows:
        """Sparse channels-last: the convolution at the computed rows only."""
        g = self.g
        kh, kw = m.kernel_size
        s = m.stride[0]
        cin, cout = m.in_channels, m.out_channels
        out_stride = x.S * s
        r = self.at(out_stride)
        # The stored weights (shared with the other graphs of the stage) and
        # the BN folded in-graph; ORT folds these constants at load.
        weight = g.const(f"{name}.weight", _f32(m.weight))
        scale, shift = self._bn(m, bn)
        wt = g.op("Transpose", [weight], (), hint=f"{name}.wt", perm=[2, 3, 1, 0])
        wm = g.op("Reshape", [wt.name, g.shared(f"shape{kh * kw * cin}x{cout}", _i64(kh * kw * cin, cout))], (),
                  hint=f"{name}.wm")
        wf = g.op("Mul", [wm.name, g.const(f"{name}.scale", scale.reshape(1, cout))], (), hint=f"{name}.wf")
        if kh == 1 and s == 1:
            inp = self.computed_rows(x, out_stride)
        else:
            if (kh, kw) != (3, 3) or m.padding != (1, 1) or s not in (1, 2):
                raise ValueError(f"{name}: unsupported convolution {m}")
            xm = self.cl(x)
            offs = [(dy, dx) for dy in range(3) for dx in range(3)]
            nb = r.neighbours("idx", offs, s, 1, fine=self.at(xm.S))
            gathered = g.op("Gather", [xm.name, nb], (), hint=f"{name}.nb", axis=0)
            inp = g.op("Reshape", [gathered.name, g.shared(f"shape-1x{9 * cin}", _i64(-1, 9 * cin))], (),
                       hint=f"{name}.cols").name
        z = g.op("MatMul", [inp, wf.name], (), hint=f"{name}.z").name
        if m.bias is not None:
            z = g.op("Add", [z, g.const(f"{name}.bias_f", (_f32(m.bias) * scale).reshape(1, cout))], (),
                     hint=f"{name}.z").name
        offs, wts = rbf_support(float(m.Lambda.detach()))
        r.radius = max(r.radius, support_radius(offs))
        res: Optional[Map] = None
        if residual is not None:
            res = self.cl(residual)
            if res.S != out_stride or res.C != cout:
                raise ValueError(f"{name}: residual at stride {res.S} with {res.C} channels")
        shift_row = g.const(f"{name}.shift", shift.reshape(1, cout)) if bn is not None else ""

        def finish(rows: str, which: str) -> str:
            """BN shift, residual, ReLU on rows of the computed or band pixels."""
            if bn is not None:
                rows = g.op("Add", [rows, shift_row], (), hint=f"{name}.bn").name
            if res is not None:
                res_rows = g.op("Gather", [res.name, r.safe(which)], (), hint=f"{name}.res", axis=0)
                rows = g.op("Add", [rows, res_rows.name], (), hint=f"{name}.sum").name
            if relu:
                rows = g.op("Relu", [rows], (), hint=f"{name}.relu").name
            return rows

        def band() -> str:
            if not offs:
                nb_ = g.op("Shape", [r.band_in], (), hint="b")
                shape = g.op("Concat", [nb_.name, g.shared(f"c{cout}", _i64(cout))], (), hint="bshape", axis=0)
                return finish(g.op("Expand", [self.zeros(1, cout), shape.name], (), hint=f"{name}.fill").name, "band")
            zext = g.op("Concat", [z, self.zeros(1, cout)], (), hint=f"{name}.zext", axis=0)
            taps = g.op("Gather", [zext.name, r.fill_table(offs)], (), hint=f"{name}.taps", axis=0)  # [K, B, C]
            flat = g.op("Reshape", [taps.name, g.shared(f"shape{len(offs)}x-1", _i64(len(offs), -1))], (),
                        hint=f"{name}.taps")
            wsum = g.op("MatMul", [g.const(f"{name}.rbf_taps", wts.reshape(1, -1)), flat.name], (),
                        hint=f"{name}.fill")  # [1, B*C]
            fill = g.op("Reshape", [wsum.name, g.shared(f"shape-1x{cout}", _i64(-1, cout))], (), hint=f"{name}.fill")
            return finish(fill.name, "band")

        def bg() -> str:
            """The value at pixels away from the computed ones: the BN shift
            (0 without BN), plus the residual, through the ReLU."""
            if res is not None:
                v = g.op("Add", [res.name, shift_row], (), hint="bg").name if shift_row else res.name
                return g.op("Relu", [v], (), hint="bg").name if relu else v
            c = np.maximum(shift, 0) if relu else shift
            return g.op("Expand", [g.const("bg", c.reshape(1, -1).astype(np.float32)),
                                   g.shared(f"shape{r.HW + 2}x{cout}", _i64(r.HW + 2, cout))], (), hint="bg").name

        return Rows(finish(z, "idx"), out_stride, cout, lazy(band), lazy(bg))

    def depthwise(self, x: str, kernel: np.ndarray, c: int, bias: Optional[np.ndarray], name: str) -> str:
        """The same 2-D kernel on each of the c channels (zero padding, same size)."""
        g = self.g
        kh, kw = kernel.shape
        ins = [x, g.const(f"{name}.kernel", np.ascontiguousarray(np.broadcast_to(kernel, (c, 1, kh, kw))))]
        if bias is not None:
            ins.append(g.const(f"{name}.bias", bias.astype(np.float32)))
        return g.op("Conv", ins, (), hint=name, kernel_shape=[kh, kw], strides=[1, 1],
                    pads=[kh // 2, kw // 2, kh // 2, kw // 2], dilations=[1, 1], group=c).name

    def upsample(self, f: Feature, factor: int) -> NMap:
        """Bilinear upsampling (half-pixel) in NCHW, as the reference."""
        x = self.nchw(f)
        if factor == 1:
            return x
        g = self.g
        up = g.op("Resize", [x.name, "", g.shared(f"scales_x{factor}", np.array([1, 1, factor, factor], np.float32))],
                  (), hint="up", mode="linear", coordinate_transformation_mode="half_pixel")
        return NMap(up.name, x.S // factor, x.C)

    def avgpool(self, f: Feature) -> NMap:
        x = self.nchw(f)
        pooled = self.g.op("AveragePool", [x.name], (), hint="pool", kernel_shape=[2, 2], strides=[2, 2])
        return NMap(pooled.name, x.S * 2, x.C)

    def sequence(self, seq: MaskedSequential, x: Feature, name: str) -> Feature:
        """Conv [BN] [ReLU] groups, AvgPool and Upsample layers in order."""
        layers = list(seq)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, MaskedSequential):
                x = self.sequence(layer, x, f"{name}.{i}")
                i += 1
            elif isinstance(layer, nn.Conv2d):
                bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d) else None
                j = i + 1 + (bn is not None)
                relu = j < len(layers) and isinstance(layers[j], nn.ReLU)
                x = self.conv(layer, x, bn, relu, name=f"{name}.{i}", bn_name=f"{name}.{i + 1}")
                i = j + relu
            elif isinstance(layer, nn.AvgPool2d):
                x = self.avgpool(x)
                i += 1
            elif isinstance(layer, nn.Upsample):
                if layer.mode != "bilinear" or layer.align_corners or float(layer.scale_factor) != 2.0:
                    raise ValueError(f"{name}.{i}: unsupported upsample {layer}")
                x = self.upsample(x, 2)
                i += 1
            else:
                raise TypeError(f"{name}.{i}: cannot emit {type(layer).__name__} sparsely")
        return x

    def block(self, b: BasicBlock, x: Feature, name: str) -> Feature:
        h = self.conv(b.conv1, x, b.bn1, True, name=f"{name}.conv1", bn_name=f"{name}.bn1")
        return self.conv(b.conv2, h, b.bn2, True, residual=x, name=f"{name}.conv2", bn_name=f"{name}.bn2")

    def hr_module(self, m: HighResolutionModule, xs: list[Feature], name: str) -> list[Feature]:
        for i, branch in enumerate(m.branches):
            for k, b in enumerate(branch):
                xs[i] = self.block(b, xs[i], f"{name}.branches.{i}.{k}")
        out: list[Feature] = []
        g = self.g
        for i, row in enumerate(m.fuse_layers):
            terms: list[str] = []
            for j in range(len(xs)):
                if j == i:
                    terms.append(self.nchw(xs[j]).name)
                elif j > i:
                    y = self.sequence(row[j], xs[j], f"{name}.fuse_layers.{i}.{j}")
                    terms.append(self.upsample(y, 2 ** (j - i)).name)
                else:
                    y = self.sequence(row[j], xs[j], f"{name}.fuse_layers.{i}.{j}")
                    terms.append(self.nchw(y).name)
            # The reference's order: term 0 first, then the others in order.
            acc = terms[0]
            for t in terms[1:]:
                acc = g.op("Add", [acc, t], (), hint="fuse").name
            out.append(NMap(g.op("Relu", [acc], (), hint="fuse").name, xs[i].S, xs[i].C))
        return out

    def exit_input(self, xs: Sequence[Feature]) -> NMap:
        ups = [self.upsample(x, 2**i) for i, x in enumerate(xs)]
        cat = self.g.op("Concat", [u.name for u in ups], (), hint="exit_input", axis=1)
        return NMap(cat.name, ups[0].S, sum(u.C for u in ups))


def stage_graph(model: ADPCHRNet, k: int, inputs: Sequence[Value], state_names: Sequence[str],
                height: int, width: int, logits_name: str = "logits",
                min_channels: int = SPARSE_MIN_CHANNELS,
                dense_fill_max_pixels: int = DENSE_FILL_MAX_PIXELS) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The sparse graph of stage k > 1 and its band radii per stride
    (`sparse.bands`). Graph inputs: the state inputs, then idxS and bandS
    for each stride S used, ascending. 1x1 convolutions and 3x3 ones with at
    least min_channels outputs run sparsely, the others densely (exactly),
    their fill a dense depthwise convolution on maps of at most
    dense_fill_max_pixels pixels and a gather at the band pixels on larger ones."""
    if k < 2 or not model.masked:
        raise ValueError(f"stage {k}: sparse stages are stages 2-4 of an adpc model")
    e = Emitter(model, height, width, min_channels, dense_fill_max_pixels)
    tname, sname, hname = (("transition1", "stage2", "exit2"), ("transition2", "stage3", "exit3"),
                           ("transition3", "stage4", "last_layer"))[k - 2]
    trans = getattr(model, tname)
    maps = [e.enter(v) for v in inputs]
    xs: list[Feature] = []
    for i, t in enumerate(trans):
        if i < len(maps):
            xs.append(maps[i] if t is None else e.sequence(t, maps[i], f"{tname}.{i}"))
        else:
            xs.append(e.sequence(t, maps[-1], f"{tname}.{i}"))
    stage: HRStage = getattr(model, sname)
    for i, hm in enumerate(stage):
        xs = e.hr_module(hm, xs, f"{sname}.{i}")
    logits = e.sequence(getattr(model, hname), e.exit_input(xs), hname)
    outs = list(state_names)
    for n, x in zip(outs, xs):
        e.leave(x, n)
    e.leave(logits, logits_name)
    g = e.g
    classes = model.num_classes
    oh, ow = height // 4, width // 4
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))  # noqa: E731
    graph_inputs = [vi(v.name, v.shape) for v in inputs]
    bands = {}
    for s in sorted(e.res):
        r = e.res[s]
        graph_inputs += [helper.make_tensor_value_info(r.idx_in, INT64, [f"n{s}"]),
                         helper.make_tensor_value_info(r.band_in, INT64, [f"b{s}"])]
        bands[str(s)] = r.radius
    outputs = [vi(n, (1, x.C, height // x.S, width // x.S)) for n, x in zip(outs, xs)]
    outputs.append(vi(logits_name, (1, classes, oh, ow)))
    graph = helper.make_graph(g.nodes, f"{model.cfg.name}_{model.variant}_stage{k}_sparse", graph_inputs, outputs,
                              initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", SPARSE_OPSET)],
                             producer_name="models.adpc", ir_version=8), bands
