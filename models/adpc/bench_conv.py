"""ONNX Runtime's dense Conv, one thread, per layer, at the shapes of the
native kernels' benchmark (`go test -run '^$' -bench ConvRows
./engines/native/`): the reference the kernels' GFLOP/s are read against
(docs/sparse.md). Layers of one shape are timed as a chain of 4; single
layers include ONNX Runtime's layout conversions, so they read pessimistic.

    /usr/bin/python3 -m models.adpc.bench_conv [NAME-SUBSTRING ...]
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .ort import Runtime


def conv_chain(cin: int, cout: int, k: int, stride: int, h: int, w: int, layers: int):
    """A graph of `layers` convolutions (random weights) and its output."""
    nodes, inits, prev = [], [], "x"
    rng = np.random.default_rng(1)
    for i in range(layers):
        ci = cin if i == 0 else cout
        inits += [numpy_helper.from_array(rng.standard_normal((cout, ci, k, k)).astype(np.float32) * 0.1, f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"y{i}"], pads=[k // 2] * 4, strides=[stride] * 2))
        prev = f"y{i}"
    out = (1, cout, h // stride, w // stride)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, list(out))], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)], ir_version=8), out, prev


def shapes():
    """(name, cin, cout, k, stride, h, w, layers) of HRNet-W18-Small-v2's and W48's layers at 512x1024."""
    out = []
    for net, width in (("W18", 18), ("W48", 48)):
        for b, (h, w) in enumerate(((128, 256), (64, 128), (32, 64), (16, 32))):
            c = width << b
            out.append((f"{net}/3x3/{c}@{h}x{w}", c, c, 3, 1, h, w, 4))
        for b, (h, w) in enumerate(((128, 256), (64, 128), (32, 64))):
            c = width << b
            out.append((f"{net}/3x3s2/{c}to{2 * c}@{h}x{w}", c, 2 * c, 3, 2, h, w, 1))
        for b, (h, w) in enumerate(((64, 128), (32, 64), (16, 32))):
            c = width << (b + 1)
            out.append((f"{net}/1x1/{c}to{width}@{h}x{w}", c, width, 1, 1, h, w, 1))
        # Stage 2's entry: stage 1's 256 channels to the first two branches.
        out.append((f"{net}/3x3/256to{width}@128x256", 256, width, 3, 1, 128, 256, 1))
        out.append((f"{net}/3x3s2/256to{2 * width}@128x256", 256, 2 * width, 3, 2, 128, 256, 1))
        head = 15 * width
        out.append((f"{net}/1x1/{head}to{head}@128x256", head, head, 1, 1, 128, 256, 1))
    return out


def main(only: list[str]) -> None:
    rt = Runtime(threads=1)
    for name, cin, cout, k, stride, h, w, layers in shapes():
        if only and not any(o in name for o in only):
            continue
        model, out_shape, out = conv_chain(cin, cout, k, stride, h, w, layers)
        with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
            f.write(model.SerializeToString())
            f.flush()
            sess = rt.session(f.name)
            x = np.random.default_rng(2).standard_normal((1, cin, h, w)).astype(np.float32)
            sess.run({"x": x}, {out: out_shape})
            times = []
            for _ in range(3 if cin * cout * h * w > 720 * 720 * 128 * 256 // 4 else 15):
                t0 = time.perf_counter()
                sess.run({"x": x}, {out: out_shape})
                times.append(time.perf_counter() - t0)
        per = sorted(times)[len(times) // 2] / layers
        flops = 2 * cin * cout * k * k * (h // stride) * (w // stride)
        print(f"{name:32s} {per * 1e3:8.3f} ms/layer {flops / per / 1e9:7.1f} GFLOP/s (chain of {layers})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
