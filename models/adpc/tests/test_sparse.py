"""Sparse stages (docs/bundle.md, docs/sparse.md): the RBF support bound, the
index tables, and the sparse graphs against the PyTorch masked forward on
ONNX Runtime: partial masks at every stage, a resolution with no computed
pixel, -1 padding, all ones (the dense graph), weights stored once."""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from models.adpc import anytime, onnx_sparse, sparse_tables
from models.adpc.build import build
from models.adpc.export import SHARED_BYTES, export
from models.adpc.init import random_image
from models.adpc.labels import CITYSCAPES
from models.adpc.layers import Masks

H, W = 64, 128
REL_L2 = 1e-4
TINY = Path(__file__).resolve().parents[3] / "testdata" / "bundles" / "tiny-sparse"


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def runtime():
    from models.adpc.ort import ORTUnavailable, Runtime
    try:
        return Runtime(threads=1)
    except ORTUnavailable as e:
        raise unittest.SkipTest(str(e))


class SupportTest(unittest.TestCase):
    def test_bound_holds_and_is_tight_for_lambda_half_to_five(self):
        rng = np.random.default_rng(0)
        for lam in np.linspace(0.5, 5.0, 46):
            offs, w = onnx_sparse.rbf_support(float(lam))
            full = onnx_sparse.rbf_weights(float(lam))
            c = full.shape[0] // 2
            kept = {(dy, dx) for dy, dx in offs}
            dropped = sum(full[c + dy, c + dx] for dy in range(-c, c + 1) for dx in range(-c, c + 1)
                          if (dy, dx) not in kept)
            self.assertLessEqual(dropped, onnx_sparse.RBF_TOLERANCE, lam)
            # Tight: keeping one squared distance less would break the bound.
            if offs:
                d2max = max(dy * dy + dx * dx for dy, dx in offs)
                more = sum(full[c + dy, c + dx] for dy, dx in offs if dy * dy + dx * dx == d2max)
                self.assertGreater(dropped + more, onnx_sparse.RBF_TOLERANCE, lam)
            # The cut fill differs from the full 7x7 one by at most tol * max|z|.
            z = torch.from_numpy(rng.standard_normal((1, 1, 24, 24)).astype(np.float32))
            ref = F.conv2d(z.double(), torch.from_numpy(full)[None, None], padding=c)
            cut = np.zeros_like(full)
            for (dy, dx), wt in zip(offs, w):
                cut[c + dy, c + dx] = wt
            got = F.conv2d(z.double(), torch.from_numpy(cut.astype(np.float64))[None, None], padding=c)
            err = float((got - ref).abs().max())
            self.assertLessEqual(err, onnx_sparse.RBF_TOLERANCE * float(z.abs().max()) + 1e-6 * float(ref.abs().max()),
                                 lam)
        self.assertEqual(onnx_sparse.rbf_support(3.0)[0], [(-1, 0), (0, -1), (0, 1), (1, 0), (-1, -1), (-1, 1),
                                                           (1, -1), (1, 1)])
        self.assertEqual(onnx_sparse.support_radius(onnx_sparse.rbf_support(0.5)[0]), 3)
        self.assertEqual(onnx_sparse.rbf_support(5.0)[0], [(-1, 0), (0, -1), (0, 1), (1, 0)])


    def test_separable_factors_give_the_kernel(self):
        for lam in (0.5, 0.8, 1.5, 3.0):
            full = onnx_sparse.rbf_weights(lam)
            row, col = onnx_sparse.rbf_separable(lam, 3)
            outer = np.outer(col.astype(np.float64), row.astype(np.float64))
            outer[3, 3] = 0.0
            np.testing.assert_allclose(outer, full, rtol=1e-6, atol=1e-12)


class FlagsTest(unittest.TestCase):
    def test_bad_min_channels_is_an_error(self):
        import io
        from contextlib import redirect_stderr
        from models.adpc import export as export_cli
        for bad in ("1,2", "x", "-1"):
            with redirect_stderr(io.StringIO()) as err:
                rc = export_cli.main(["--arch", "hrnet_tiny", "--variant", "adpc", "--seed", "1", "--height", "64",
                                      "--width", "128", "--sparse-min-channels", bad, "--out", "/nonexistent/x"])
            self.assertEqual(rc, 2, bad)
            self.assertIn("--sparse-min-channels", err.getvalue())
        self.assertEqual(export_cli.parse_min_channels("64,64,0"), [64, 64, 0])
        self.assertEqual(export_cli.parse_min_channels("32"), 32)


class TablesTest(unittest.TestCase):
    def test_against_brute_force(self):
        rng = np.random.default_rng(1)
        mask = (rng.random((8, 16)) < 0.2).astype(np.uint8)
        for stride, radius in ((4, 0), (4, 2), (8, 1), (16, 3)):
            m = mask[::stride // 4, ::stride // 4]
            idx, band = sparse_tables.tables(mask, stride, 4, radius)
            h, w = m.shape
            want_band = [i * w + j for i in range(h) for j in range(w) if not m[i, j] and any(
                m[a, b] for a in range(max(0, i - radius), min(h, i + radius + 1))
                for b in range(max(0, j - radius), min(w, j + radius + 1)))]
            self.assertEqual(idx.tolist(), [i * w + j for i in range(h) for j in range(w) if m[i, j]])
            self.assertEqual(band.tolist(), want_band)
            self.assertEqual(idx.dtype, np.int64)
        np.testing.assert_array_equal(sparse_tables.pad(np.array([3], np.int64), 3), [3, -1, -1])
        with self.assertRaises(ValueError):
            sparse_tables.pad(np.array([1, 2], np.int64), 1)


class StageTest(unittest.TestCase):
    """Each sparse stage graph against PyTorch's stage forward for chosen
    masks (every output: states at all pixels and logits)."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.rt = runtime()
        cls.dir = tempfile.TemporaryDirectory()
        cls.model = build("hrnet_tiny", "adpc", seed=5)
        cls.x = random_image(11, H, W)
        with torch.no_grad():
            state, _ = cls.model.stage(1, [cls.x])
            cls.states = {1: state}
            for k in (2, 3):
                cls.states[k], _ = cls.model.stage(k, cls.states[k - 1], None)
        cls.bundles = {}
        # Min channels 0: every 3x3 convolution sparse; 32: mixed; a huge
        # value: all dense (1x1 sparse), their fill at the band pixels or
        # (on maps up to 128 pixels: strides 16 and 32) depthwise.
        for mc, fill in ((0, 0), (32, 0), (10**6, 0), (10**6, 128)):
            out = Path(cls.dir.name) / f"mc{mc}-fill{fill}"
            export(cls.model, out, height=H, width=W, threshold=0.8, labels=CITYSCAPES, name="t",
                   sparse_min_channels=mc, dense_fill_max_pixels=fill)
            cls.bundles[mc, fill] = out

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def masks(self) -> dict[str, np.ndarray]:
        h, w = H // 4, W // 4
        rng = np.random.default_rng(2)
        yy, xx = np.mgrid[:h, :w]
        blob = ((yy - 6) ** 2 + (xx - 20) ** 2 < 30).astype(np.uint8)
        odd = np.zeros((h, w), np.uint8)
        odd[1::2, 1::2] = 1  # nothing computed at strides 8 and above
        corner = np.zeros((h, w), np.uint8)
        corner[0, 0] = 1
        return {"random": (rng.random((h, w)) < 0.4).astype(np.uint8), "blob": blob, "odd": odd,
                "corner": corner, "ones": np.ones((h, w), np.uint8)}

    def check(self, bundle: Path, k: int, mask: np.ndarray, pad: int, label: str) -> None:
        from models.adpc.bundle_run import graph_output_shapes
        man = json.loads((bundle / "bundle.json").read_text())
        st = man["stages"][k - 1]
        inputs = self.states[k - 1]
        with torch.no_grad():
            want_state, want_logits = self.model.stage(k, inputs, Masks(torch.from_numpy(mask)[None, None].float()))
        feeds = {f"x{i}": t.numpy() for i, t in enumerate(inputs)}
        feeds.update(sparse_tables.feeds(st, mask, 4, pad))
        outs = graph_output_shapes(bundle / st["file"])
        got = self.rt.session(bundle / st["file"]).run(feeds, outs)
        wants = dict(zip(st["state"], want_state))
        wants["logits"] = want_logits
        for name, want in wants.items():
            w = want.numpy()
            # Logits at frozen pixels are never used (copy aggregation);
            # states are used at every pixel.
            g = got[name]
            self.assertLess(rel_l2(g, w), REL_L2, f"{label} stage {k} {name}")

    def test_stages_match_pytorch(self):
        for (mc, fill), bundle in self.bundles.items():
            for label, mask in self.masks().items():
                for k in (2, 3, 4):
                    self.check(bundle, k, mask, 0, f"min_channels {mc} dense fill max {fill} mask {label}")

    def test_padding_changes_nothing(self):
        from models.adpc.bundle_run import graph_output_shapes
        bundle = self.bundles[32, 0]
        man = json.loads((bundle / "bundle.json").read_text())
        mask = self.masks()["random"]
        for k in (2, 3, 4):
            st = man["stages"][k - 1]
            feeds = {f"x{i}": t.numpy() for i, t in enumerate(self.states[k - 1])}
            outs = graph_output_shapes(bundle / st["file"])
            sess = self.rt.session(bundle / st["file"])
            plain = sess.run(dict(feeds, **sparse_tables.feeds(st, mask, 4, 0)), outs)
            padded = sess.run(dict(feeds, **sparse_tables.feeds(st, mask, 4, 13)), outs)
            for name in outs:
                np.testing.assert_array_equal(padded[name], plain[name], f"stage {k} {name}")

    def test_no_computed_pixel_at_a_resolution(self):
        mask = self.masks()["odd"]
        man = json.loads((self.bundles[0, 0] / "bundle.json").read_text())
        for k in (2, 3, 4):
            st = man["stages"][k - 1]
            ins = sparse_tables.feeds(st, mask, 4)
            empty = [n for n, s in st["inputs"].items() if s.startswith("index:") and len(ins[n]) == 0]
            self.assertTrue(empty, f"stage {k}: every resolution has computed pixels")
            for bundle in self.bundles.values():
                self.check(bundle, k, mask, 3, f"odd {bundle.name}")


class BundleTest(unittest.TestCase):
    """Whole bundles through the anytime loop: sparse (plain and padded),
    masked and dense paths against PyTorch."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.rt = runtime()

    def test_paths_against_pytorch(self):
        from models.adpc.bundle_run import run_bundle
        model = build("hrnet_tiny", "adpc", seed=6)
        x = random_image(12, H, W)
        with tempfile.TemporaryDirectory() as d:
            export(model, d, height=H, width=W, threshold=0.8, labels=CITYSCAPES, name="t")
            for threshold in (0.8, 1.0):
                want = anytime.run(model, x, threshold)
                if threshold < 1:
                    frozen = [1 - float(m.mean()) for m in want.masks]
                    self.assertTrue(all(0 < f < 1 for f in frozen), frozen)
                for path, pad in (("sparse", 0), ("sparse", 9), ("masked", 0), ("dense", 0)):
                    merged, masks = run_bundle(d, x.numpy(), threshold, self.rt, path=path, pad=pad)
                    for k in range(4):
                        self.assertLess(rel_l2(merged[k], want.merged[k].numpy()), REL_L2,
                                        f"{path} pad {pad} threshold {threshold} exit {k + 1}")
                    for k in range(3):
                        np.testing.assert_array_equal(masks[k], want.masks[k][0, 0].numpy().astype(np.uint8))

    def test_weights_stored_once(self):
        with tempfile.TemporaryDirectory() as d:
            export(build("hrnet_tiny", "adpc", seed=1), d, height=H, width=W, threshold=0.8, labels=CITYSCAPES,
                   name="t")
            for k in (2, 3, 4):
                graphs = [onnx.load(str(Path(d) / f), load_external_data=False)
                          for f in (f"stage{k}.sparse.onnx", f"stage{k}.onnx", f"stage{k}.dense.onnx")]
                conv = {t.name: t for t in graphs[1].graph.initializer if t.name.endswith(".weight")
                        and len(t.dims) == 4 and 4 * int(np.prod(t.dims)) >= SHARED_BYTES}
                self.assertTrue(conv)
                for g in graphs:
                    for t in g.graph.initializer:
                        if t.name in conv:
                            self.assertEqual(t.data_location, onnx.TensorProto.EXTERNAL, t.name)
                            self.assertEqual({e.key: e.value for e in t.external_data},
                                             {e.key: e.value for e in conv[t.name].external_data})
                size = (Path(d) / f"stage{k}.weights").stat().st_size
                conv_bytes = sum(int(np.prod(t.dims)) * 4 for t in conv.values())
                self.assertLess(size, 1.5 * conv_bytes + 4096 * (len(conv) + 64))

    def test_reexport_recovers_the_weights(self):
        from models.adpc import reexport
        from models.adpc.bundle_run import run_bundle
        model = build("hrnet_tiny", "adpc", seed=7)
        x = random_image(13, H, W).numpy()
        with tempfile.TemporaryDirectory() as d:
            masked, sparse = Path(d) / "masked", Path(d) / "sparse"
            export(model, masked, height=H, width=W, threshold=0.8, labels=CITYSCAPES, name="orig", mode="masked")
            (masked / "card.md").write_text("kept\n")
            got = reexport.recover(masked).state_dict()
            for name, want in model.state_dict().items():
                if name.endswith("num_batches_tracked"):  # not in a graph, unused in eval
                    continue
                tol = 1e-5 if name.endswith("Lambda") else 0
                np.testing.assert_allclose(got[name].numpy(), want.numpy(), rtol=tol, atol=0, err_msg=name)
            man = reexport.reexport(masked, sparse)
            self.assertEqual(man["name"], "orig")
            self.assertEqual([st["mode"] for st in man["stages"]], ["dense", "sparse", "sparse", "sparse"])
            self.assertEqual((sparse / "card.md").read_text(), "kept\n")
            ref, ref_masks = run_bundle(masked, x, 0.8, self.rt)
            out, masks = run_bundle(sparse, x, 0.8, self.rt)
            for k in range(4):
                self.assertLess(rel_l2(out[k], ref[k]), REL_L2)
            for a, b in zip(masks, ref_masks):
                np.testing.assert_array_equal(a, b)

    def test_tiny_sparse_testdata(self):
        from models.adpc.bundle_run import run_bundle
        ref = TINY / "reference"
        x = np.load(ref / "x.npy")
        man = json.loads((TINY / "bundle.json").read_text())
        self.assertEqual([s["mode"] for s in man["stages"]], ["dense", "sparse", "sparse", "sparse"])
        merged, masks = run_bundle(TINY, x, man["confidence"]["threshold"], self.rt, pad=5)
        for k in range(4):
            self.assertLess(rel_l2(merged[k], np.load(ref / f"exit{k + 1}_logits.npy")), REL_L2)
        for k in range(3):
            np.testing.assert_array_equal(masks[k], np.load(ref / f"exit{k + 1}_mask.npy"))


if __name__ == "__main__":
    unittest.main()
