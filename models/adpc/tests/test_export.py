"""Export to a bundle, the reference dumps, and (when the ONNX Runtime
library is present) the bundle run on ORT against PyTorch."""

from __future__ import annotations

import io
import json
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import torch

from models.adpc import anytime, export, flops, infer
from models.adpc.build import build
from models.adpc.init import random_image
from models.adpc.labels import CITYSCAPES, load as load_labels

H, W = 64, 128


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.dir = tempfile.TemporaryDirectory()
        cls.bundle = Path(cls.dir.name) / "tiny"
        with redirect_stdout(io.StringIO()):
            rc = export.main(["--arch", "hrnet_tiny", "--variant", "adpc", "--seed", "4", "--height", str(H),
                              "--width", str(W), "--threshold", "0.8", "--mode", "masked", "--out", str(cls.bundle)])
        assert rc == 0
        cls.manifest = json.loads((cls.bundle / "bundle.json").read_text())
        cls.model = build("hrnet_tiny", "adpc", seed=4)
        cls.x = random_image(9, H, W)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_manifest(self):
        m = self.manifest
        self.assertEqual(m["format"], "anytime-bundle/1")
        self.assertEqual(m["input"]["shape"], [1, 3, H, W])
        self.assertEqual(m["output_stride"], 4)
        self.assertEqual(len(m["labels"]), 19)
        self.assertEqual(m["confidence"], {"criterion": "max_softmax", "threshold": 0.8})
        self.assertEqual([s["mode"] for s in m["stages"]], ["dense", "masked", "masked", "masked"])
        self.assertEqual(m["stages"][0]["inputs"], {"image": "input"})
        self.assertEqual(m["stages"][1]["inputs"], {"x0": "state:s1.b0", "mask": "mask"})
        self.assertEqual(m["stages"][2]["inputs"], {"x0": "state:s2.b0", "x1": "state:s2.b1", "mask": "mask"})
        self.assertEqual(m["stages"][3]["state"], [])
        self.assertEqual(m["provenance"]["variant"], "adpc")
        self.assertEqual(m["provenance"]["opset"], 13)

    def test_macs_agree_with_flops_report(self):
        r = flops.report(flops.count_convs(self.model, H, W))
        total = 0
        for k, st in enumerate(self.manifest["stages"], start=1):
            total += st["macs"]["fixed"] + sum(v["macs"] for v in st["macs"]["masked"].values())
            self.assertEqual(total, r.cumulative_macs[k - 1])

    def test_graphs_static_and_named(self):
        for st in self.manifest["stages"]:
            g = onnx.load(str(self.bundle / st["file"])).graph
            onnx.checker.check_model(onnx.load(str(self.bundle / st["file"])))
            self.assertEqual(sorted(i.name for i in g.input), sorted(st["inputs"]))
            self.assertEqual([o.name for o in g.output], st["state"] + [st["logits"]])
            for v in list(g.input) + list(g.output):
                self.assertEqual(v.type.tensor_type.elem_type, onnx.TensorProto.FLOAT)
                self.assertTrue(all(d.dim_value > 0 for d in v.type.tensor_type.shape.dim), v.name)
            logits = [o for o in g.output if o.name == "logits"][0]
            self.assertEqual([d.dim_value for d in logits.type.tensor_type.shape.dim], [1, 19, H // 4, W // 4])

    def test_bad_size_is_an_error(self):
        with redirect_stderr(io.StringIO()) as err:
            rc = export.main(["--arch", "hrnet_tiny", "--variant", "rh", "--seed", "1", "--height", "60",
                              "--width", "128", "--out", str(Path(self.dir.name) / "bad")])
        self.assertEqual(rc, 2)
        self.assertIn("multiples of 32", err.getvalue())

    def test_infer_dump(self):
        d = Path(self.dir.name)
        np.save(d / "x.npy", self.x.numpy())
        with redirect_stdout(io.StringIO()):
            rc = infer.main(["--arch", "hrnet_tiny", "--variant", "adpc", "--seed", "4", "--tensor",
                             str(d / "x.npy"), "--threshold", "0.8", "--dump", str(d / "dump")])
        self.assertEqual(rc, 0)
        r = anytime.run(self.model, self.x, 0.8)
        for k in range(1, 5):
            a = np.load(d / "dump" / f"exit{k}_logits.npy")
            self.assertEqual((a.dtype, a.shape), (np.dtype("<f4"), (1, 19, H // 4, W // 4)))
            np.testing.assert_array_equal(a, r.merged[k - 1].numpy())
            with open(d / "dump" / f"exit{k}_logits.npy", "rb") as f:
                self.assertEqual(f.read(8), b"\x93NUMPY\x01\x00")
        for k in range(1, 4):
            m = np.load(d / "dump" / f"exit{k}_mask.npy")
            self.assertEqual((m.dtype, m.shape), (np.dtype(np.uint8), (H // 4, W // 4)))
            np.testing.assert_array_equal(m, r.masks[k - 1][0, 0].numpy().astype(np.uint8))
        self.assertFalse((d / "dump" / "exit4_mask.npy").exists())

    def test_on_onnx_runtime(self):
        from models.adpc.ort import ORTUnavailable, Runtime
        try:
            rt = Runtime(threads=1)
        except ORTUnavailable as e:
            self.skipTest(str(e))
        from models.adpc.bundle_run import run_bundle
        want = anytime.run(self.model, self.x, 0.8)
        merged, masks = run_bundle(self.bundle, self.x.numpy(), 0.8, rt)
        for k in range(4):
            w = want.merged[k].numpy()
            self.assertLess(float(np.linalg.norm(merged[k] - w) / np.linalg.norm(w)), 1e-4)
        for k in range(3):
            np.testing.assert_array_equal(masks[k], want.masks[k][0, 0].numpy().astype(np.uint8))


class LabelsTest(unittest.TestCase):
    def test_cityscapes(self):
        self.assertEqual(len(CITYSCAPES), 19)
        self.assertEqual(CITYSCAPES[0].name, "road")

    def test_files(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "l.txt"
            p.write_text("background\nperson 220 20 60\n\n")
            labels = load_labels(str(p))
            self.assertEqual([(l.name, l.color) for l in labels], [("background", (128, 128, 128)),
                                                                    ("person", (220, 20, 60))])
            j = Path(d) / "l.json"
            j.write_text(json.dumps([{"name": "a", "color": [1, 2, 3]}, {"name": "a"}]))
            with self.assertRaisesRegex(ValueError, "duplicate"):
                load_labels(str(j))


if __name__ == "__main__":
    unittest.main()
