"""Blocks mode (docs/bundle.md): the cell grid, the block-mask forward, and
the exactness test of issue 8 — with random weights the blocks graph run on
ONNX Runtime equals its dense twin and the PyTorch block-mask forward within
1e-4 relative, for empty, full, corner, random and bucket-padded cell sets."""

from __future__ import annotations

import io
import json
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import torch

from models.adpc import anytime, blocks, export
from models.adpc.build import build
from models.adpc.bundle_run import graph_output_shapes, run_bundle
from models.adpc.hrnet import run_branch
from models.adpc.init import random_image
from models.adpc.labels import CITYSCAPES
from models.adpc.layers import Masks

REL = 1e-4


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


class GridTest(unittest.TestCase):
    def test_active_inputs_and_mask(self):
        g = blocks.Grid(24, 32, 8)  # 3 x 4 cells
        self.assertEqual((g.rows, g.cols, g.cells), (3, 4, 12))
        m = np.zeros((24, 32), np.uint8)
        m[0, 0] = m[9, 31] = m[23, 8] = 1
        ids = g.active(m)
        np.testing.assert_array_equal(ids, [0, 7, 9])
        bl, nb = g.inputs(ids, 8)
        np.testing.assert_array_equal(bl, [0, 7, 9, 12, 12, 12, 12, 12])
        G = 12
        np.testing.assert_array_equal(nb[0], [G, G, G, G, 1, G, 4, 5])
        np.testing.assert_array_equal(nb[1], [2, 3, G, 6, G, 10, 11, G])
        np.testing.assert_array_equal(nb[2], [4, 5, 6, 8, 10, G, G, G])
        self.assertTrue((nb[3:] == G).all())
        self.assertEqual((bl.dtype, nb.dtype, nb.shape), (np.int64, np.int64, (8, 8)))
        bm = g.block_mask(ids)
        self.assertEqual(bm.shape, (1, 1, 24, 32))
        self.assertEqual(float(bm.sum()), 3 * 64)
        self.assertEqual(bm[0, 0, 7, 7], 1)
        self.assertEqual(bm[0, 0, 8, 24], 1)
        wide = blocks.widen(torch.from_numpy(m[None, None].astype(np.float32)), 8)
        np.testing.assert_array_equal(wide.numpy(), bm)
        with self.assertRaises(ValueError):
            g.inputs(ids, 2)

    def test_sizes_and_buckets(self):
        for bad in (0, 4, 12):
            with self.assertRaises(ValueError):
                blocks.check_size(bad)
        with self.assertRaises(ValueError):
            blocks.Grid(20, 32, 8)
        self.assertEqual(blocks.bucket_for(0, [8, 16]), 8)
        self.assertEqual(blocks.bucket_for(9, [8, 16]), 16)
        with self.assertRaises(ValueError):
            blocks.bucket_for(17, [8, 16])
        self.assertEqual(blocks.default_buckets(32), [8, 16, 32])
        self.assertEqual(blocks.default_buckets(33), [8, 16, 32, 64])


class BlockForwardTest(unittest.TestCase):
    """PyTorch semantics: out = x + M (F(x) - x) per residual block."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.model = build("hrnet_tiny", "adpc", seed=2)
        with torch.no_grad():
            cls.state, _ = cls.model.stage(1, [random_image(5, 64, 128)])

    @torch.no_grad()
    def test_all_cells_is_the_dense_model(self):
        ones = Masks(torch.ones(1, 1, 16, 32))
        a = self.model.stage(2, self.state, None)
        b = self.model.stage(2, self.state, gate=ones)
        for x, y in zip(a[0] + [a[1]], b[0] + [b[1]]):
            torch.testing.assert_close(x, y, rtol=0, atol=0)

    @torch.no_grad()
    def test_gate_keeps_frozen_cells_and_computes_active_ones(self):
        branch = self.model.stage2[0].branches[0]
        x = torch.randn(1, 8, 16, 32)
        m = torch.zeros(1, 1, 16, 32)
        m[..., :8, 8:16] = 1
        y = run_branch(branch, x, None, Masks(m))
        dense = branch(x)
        keep = m.expand_as(x) == 0
        self.assertTrue(torch.equal(y[keep], x[keep]))
        self.assertTrue(torch.equal(y[~keep], dense[~keep]))

    @torch.no_grad()
    def test_run_blocks_masks_are_cumulative_pixel_masks(self):
        x = random_image(5, 64, 128)
        r = anytime.run_blocks(self.model, x, 0.8, 8)
        for a, b in zip(r.masks, r.masks[1:]):
            self.assertTrue(bool((b <= a).all()))
        for k, m in enumerate(r.masks, start=1):
            frozen = blocks.widen(m, 8) == 0
            self.assertTrue(torch.equal(r.merged[k][frozen.expand_as(r.merged[k])],
                                        r.merged[k - 1][frozen.expand_as(r.merged[k])]))


    @torch.no_grad()
    def test_finetune_forward_is_the_reference_loop(self):
        from models.adpc.finetune_blocks import forward_blocks
        x = random_image(6, 64, 128)
        want = anytime.run_blocks(self.model, x, 0.8, 8)
        merged, pixels, cells = forward_blocks(self.model.eval(), x, "seg", 0.8, 8)
        for a, b in zip(merged, want.merged):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for p, c, m in zip(pixels, cells, want.masks):
            self.assertTrue(torch.equal(p, m))
            self.assertTrue(torch.equal(c, blocks.widen(m, 8)))


class ExactnessTest(unittest.TestCase):
    """The blocks graphs against the dense twins and PyTorch (ORT via ctypes)."""

    H, W, SIZE = 128, 256, 8  # 32 x 64 exit map, 4 x 8 cells; branch cells 8/4/2 px blockwise, 1 px dense

    @classmethod
    def setUpClass(cls):
        from models.adpc.ort import ORTUnavailable, Runtime
        try:
            cls.rt = Runtime(threads=1)
        except ORTUnavailable as e:
            raise unittest.SkipTest(str(e))
        torch.set_num_threads(1)
        cls.dir = tempfile.TemporaryDirectory()
        cls.bundle = Path(cls.dir.name) / "b"
        cls.model = build("hrnet_tiny", "adpc", seed=11)
        with redirect_stdout(io.StringIO()):
            rc = export.main(["--arch", "hrnet_tiny", "--variant", "adpc", "--seed", "11", "--height", str(cls.H),
                              "--width", str(cls.W), "--threshold", "0.8", "--mode", "blocks", "--block-size",
                              str(cls.SIZE), "--buckets", "8,16,32", "--out", str(cls.bundle)])
        assert rc == 0
        cls.manifest = json.loads((cls.bundle / "bundle.json").read_text())
        cls.x = random_image(13, cls.H, cls.W)
        cls.grid = blocks.Grid(cls.H // 4, cls.W // 4, cls.SIZE)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_manifest_and_graphs(self):
        m = self.manifest
        self.assertEqual([s["mode"] for s in m["stages"]], ["dense", "blocks", "blocks", "blocks"])
        st = m["stages"][2]
        self.assertEqual(st["inputs"], {"x0": "state:s2.b0", "x1": "state:s2.b1", "blocks": "blocks",
                                        "neighbours": "neighbours"})
        self.assertEqual(st["blocks"], {"size": 8, "buckets": [8, 16, 32],
                                        "dense": {"file": "stage3.dense.onnx", "mask": "mask"}})
        self.assertEqual(sorted(st["macs"]["masked"]), ["16", "4", "8"])
        for s in m["stages"][1:]:
            for f in (s["file"], s["blocks"]["dense"]["file"]):
                g = onnx.load(str(self.bundle / f)).graph
                self.assertEqual({n.domain for n in g.node}, {""})
                self.assertEqual(onnx.load(str(self.bundle / f)).opset_import[0].version, 13)
            ins = {i.name: i for i in onnx.load(str(self.bundle / s["file"])).graph.input}
            dims = [d.dim_param or d.dim_value for d in ins["neighbours"].type.tensor_type.shape.dim]
            self.assertEqual(dims, ["N", 8])
            # Every intermediate value is static but for N (TensorRT profiles vary N only).
            inferred = onnx.shape_inference.infer_shapes(onnx.load(str(self.bundle / s["file"])), strict_mode=True)
            for v in inferred.graph.value_info:
                dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                self.assertTrue(all(d == "N" or (isinstance(d, int) and d > 0) for d in dims), (v.name, dims))
            twin = [i.name for i in onnx.load(str(self.bundle / s["blocks"]["dense"]["file"])).graph.input]
            self.assertEqual(twin, [n for n in s["inputs"] if n not in ("blocks", "neighbours")] + ["mask"])

    def cell_sets(self) -> list[tuple[str, np.ndarray]]:
        G = self.grid.cells
        rng = np.random.default_rng(3)
        sets = [("none", np.arange(0)), ("all", np.arange(G)), ("top-left corner", np.array([0])),
                ("bottom-right corner", np.array([G - 1])), ("one inside", np.array([self.grid.cols + 2]))]
        for n in (3, 9, 17, 24):  # padded to buckets 8, 16, 32, 32
            sets.append((f"{n} random", np.sort(rng.choice(G, n, replace=False))))
        return sets

    @torch.no_grad()
    def test_blocks_graph_equals_twin_and_pytorch(self):
        state, _ = self.model.stage(1, [self.x])
        for k in (2, 3, 4):
            st = self.manifest["stages"][k - 1]
            blocks_sess = self.rt.session(self.bundle / st["file"])
            twin_sess = self.rt.session(self.bundle / st["blocks"]["dense"]["file"])
            outs = graph_output_shapes(self.bundle / st["file"])
            feeds = {f"x{i}": s.numpy() for i, s in enumerate(state)}
            results = {}
            for name, ids in self.cell_sets():
                bucket = blocks.bucket_for(len(ids), st["blocks"]["buckets"])
                bl, nb = self.grid.inputs(ids, bucket)
                mask = self.grid.block_mask(ids)
                got = blocks_sess.run({**feeds, "blocks": bl, "neighbours": nb}, outs)
                twin = twin_sess.run({**feeds, "mask": mask}, outs)
                ys, logits = self.model.stage(k, state, gate=Masks(torch.from_numpy(mask)))
                want = dict(zip(st["state"], (y.numpy() for y in ys)), logits=logits.numpy())
                for out in outs:
                    with self.subTest(stage=k, cells=name, output=out):
                        self.assertLess(rel(got[out], twin[out]), REL)
                        self.assertLess(rel(got[out], want[out]), REL)
                results[name] = got
            # The cells matter: nothing, everything and one corner all differ.
            self.assertGreater(rel(results["none"]["logits"], results["all"]["logits"]), 1e-3)
            self.assertGreater(rel(results["none"]["logits"], results["top-left corner"]["logits"]), 1e-6)
            state, _ = self.model.stage(k, state, gate=Masks(torch.ones(1, 1, self.H // 4, self.W // 4)))

    @torch.no_grad()
    def test_bundle_run_equals_pytorch(self):
        want = anytime.run_blocks(self.model, self.x, 0.8, self.SIZE)
        active = [len(self.grid.active(m[0, 0].numpy())) for m in want.masks]
        self.assertTrue(all(0 < a < self.grid.cells for a in active), active)
        for twin in (False, True):
            merged, masks = run_bundle(self.bundle, self.x.numpy(), 0.8, self.rt, twin=twin)
            for k in range(4):
                self.assertLess(rel(merged[k], want.merged[k].numpy()), REL)
            for k in range(3):
                np.testing.assert_array_equal(masks[k], want.masks[k][0, 0].numpy().astype(np.uint8))


if __name__ == "__main__":
    unittest.main()
