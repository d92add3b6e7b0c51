"""Native plans of sparse stages (docs/bundle.md, `sparse.native`): the plan
run by the reference interpreter against the PyTorch masked forward of the
same stage (random, blob, all-ones, all-zero masks and one with no computed
pixel at strides 8 and above), its structure against the bundle stage, its
weight references against the module parameters bit for bit, and the
checked-in bundles' plans against the emitter."""

from __future__ import annotations

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from models.adpc import native_plan, reexport
from models.adpc.build import build
from models.adpc.export import export
from models.adpc.init import random_image
from models.adpc.labels import CITYSCAPES
from models.adpc.layers import Masks

REL = 1e-5
ROOT = Path(__file__).resolve().parents[3]
SHIPPED = [ROOT / "testdata" / "bundles" / "tiny-sparse", ROOT / "models" / "zoo" / "fashion-seg-adpc",
           ROOT / "models" / "zoo" / "fashion-pose-adpc"]


def masks(h: int, w: int) -> dict[str, np.ndarray]:
    """Masks at the exit resolution h x w (1 = computed)."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:h, :w]
    blob = ((yy - h // 3) ** 2 + (xx - 2 * w // 3) ** 2 < h * w // 16).astype(np.uint8)
    odd = np.zeros((h, w), np.uint8)
    odd[1::2, 1::2] = 1  # nearest subsampling keeps none of these: nothing computed at strides >= 8
    return {"random": (rng.random((h, w)) < 0.4).astype(np.uint8), "blob": blob, "odd": odd,
            "ones": np.ones((h, w), np.uint8), "zeros": np.zeros((h, w), np.uint8)}


def state_inputs(st: dict) -> list[str]:
    return [n for n, src in st["inputs"].items() if src.startswith("state:")]


def check_bands(t: unittest.TestCase, plan: dict, st: dict) -> None:
    """Every stride a convolution writes at has its tables in the stage, and
    its fill taps lie within that stride's band radius."""
    bands = {int(s): r for s, r in st["sparse"]["bands"].items()}
    t.assertLessEqual(set(native_plan.strides(plan)), set(bands))
    for op in plan["ops"]:
        if op["op"] == "conv":
            radius = max((max(abs(dy), abs(dx)) for dy, dx, _ in op["taps"]), default=0)
            t.assertLessEqual(radius, bands[plan["tensors"][op["out"]]["stride"]], op["out"])


class PlanCase:
    """Exports `arch` (random weights) at height x width and checks every
    sparse stage's plan; mixed into a TestCase per configuration."""

    arch = "hrnet_tiny"
    height, width = 64, 128
    min_channels: object = 32

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.dir = tempfile.TemporaryDirectory()
        cls.bundle = Path(cls.dir.name)
        cls.model = build(cls.arch, "adpc", seed=5)
        export(cls.model, cls.bundle, height=cls.height, width=cls.width, threshold=0.8, labels=CITYSCAPES,
               name="t", sparse_min_channels=cls.min_channels)
        cls.manifest = json.loads((cls.bundle / "bundle.json").read_text())
        x = random_image(11, cls.height, cls.width)
        with torch.no_grad():
            cls.states = {1: cls.model.stage(1, [x])[0]}
            for k in (2, 3):
                cls.states[k] = cls.model.stage(k, cls.states[k - 1])[0]

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def plan(self, k: int) -> tuple[dict, bytes]:
        st = self.manifest["stages"][k - 1]
        plan = json.loads((self.bundle / st["sparse"]["native"]["file"]).read_text())
        return plan, (self.bundle / plan["weights"]).read_bytes()

    def test_plan_matches_the_masked_forward(self):
        h, w = self.height // 4, self.width // 4
        for label, mask in masks(h, w).items():
            m = torch.from_numpy(mask)[None, None].float()
            for k in (2, 3, 4):
                plan, weights = self.plan(k)
                with torch.no_grad():
                    want_state, want_logits = self.model.stage(k, self.states[k - 1], Masks(m))
                    got_state, got_logits = native_plan.interpret(plan, weights, self.states[k - 1], m)
                self.assertEqual(len(got_state), len(want_state))
                for name, got, want in zip(plan["state"] + ["logits"], got_state + [got_logits],
                                           want_state + [want_logits]):
                    self.assertEqual(got.shape, want.shape, f"{label} stage {k} {name}")
                    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))
                    self.assertLessEqual(err, REL, f"mask {label} stage {k} {name}")

    def test_plan_fits_its_stage(self):
        for k in (2, 3, 4):
            st = self.manifest["stages"][k - 1]
            self.assertEqual(st["sparse"]["native"], {"file": f"stage{k}.plan.json"})
            plan, weights = self.plan(k)
            self.assertEqual(plan["format"], "adpc-plan/1")
            self.assertEqual(plan["weights"], f"stage{k}.weights")
            self.assertEqual(plan["inputs"], state_inputs(st))
            self.assertEqual(plan["state"], st["state"])
            self.assertEqual(plan["logits"], st["logits"])
            check_bands(self, plan, st)
            # SSA: inputs written by no op, every other tensor by exactly one,
            # ops read only tensors already defined.
            defined = set(plan["inputs"])
            for op in plan["ops"]:
                reads = [op[k] for k in ("in", "residual") if op.get(k)] + [t["in"] for t in op.get("terms", ())]
                for r in reads:
                    self.assertIn(r, defined, f"stage {k}: {op['op']} reads {r} before it is written")
                self.assertNotIn(op["out"], defined, f"stage {k}: {op['out']} written twice")
                defined.add(op["out"])
            self.assertEqual(defined, set(plan["tensors"]))
            for name in plan["state"] + [plan["logits"]]:
                self.assertIn(name, defined)
            for i, x in enumerate(plan["inputs"]):
                shape = self.states[k - 1][i].shape
                self.assertEqual(plan["tensors"][x], {"channels": shape[1], "stride": self.height // shape[2]})

    def test_weight_refs_are_the_parameters(self):
        params = dict(self.model.named_parameters())
        params.update(self.model.named_buffers())
        offsets = 0
        for k in (2, 3, 4):
            st = self.manifest["stages"][k - 1]
            plan, weights = self.plan(k)
            file, shared = native_plan.stored_weights(self.bundle, native_plan.stage_graphs(st))
            _, again = native_plan.stage_plan(self.model, k, plan["inputs"], plan["state"], file, shared)
            for i, op in enumerate(plan["ops"]):
                if op["op"] != "conv":
                    continue
                module, bn_module = again.conv_modules[i]
                refs = [(op["weight"], f"{module}.weight"), (op["bias"], f"{module}.bias")]
                self.assertEqual(op["bn"] is None, bn_module is None, module)
                if bn_module is not None:
                    refs += [(op["bn"][a], f"{bn_module}.{b}") for a, b in
                             (("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"),
                              ("var", "running_var"))]
                for ref, name in refs:
                    if ref is None:
                        self.assertIsNone(getattr(self.model.get_submodule(module), "bias"), name)
                        continue
                    want = params[name].detach().numpy().astype(np.float32)
                    self.assertEqual(ref["shape"], list(want.shape), name)
                    if "offset" in ref:
                        offsets += 1
                        self.assertEqual(ref["offset"] % 4, 0, name)
                        self.assertEqual(shared[name][0], ref["offset"], name)
                        got = weights[ref["offset"]: ref["offset"] + want.nbytes]
                    else:
                        self.assertNotIn(name, shared, f"{name} is in the weights file but inline in the plan")
                        got = np.asarray(ref["values"], np.float64).astype(np.float32).tobytes()
                    self.assertEqual(got, want.tobytes(), name)
                taps = op["taps"]
                self.assertTrue(taps and all(max(abs(dy), abs(dx)) <= 3 for dy, dx, _ in taps), module)
        self.assertGreater(offsets, 0)


class TinyTest(PlanCase, unittest.TestCase):
    pass


class W18SmallTest(PlanCase, unittest.TestCase):
    """HRNet-W18-Small-v2 (two modules in stage 3, two blocks per branch) at
    a small size, the 3x3 convolutions all sparse."""

    arch = "hrnet_w18_small_v2"
    min_channels = 0


class ShippedBundlesTest(unittest.TestCase):
    """The checked-in sparse bundles (testdata/bundles/tiny-sparse, which
    the Go executor's tests read, and the zoo demos): their plans are what
    the emitter writes for their weights, and run to the masked forward."""

    def test_plans_are_the_emitters(self):
        torch.set_num_threads(1)
        for bundle in SHIPPED:
            with self.subTest(bundle=bundle.name):
                self.check(bundle)

    def check(self, bundle: Path) -> None:
        man = json.loads((bundle / "bundle.json").read_text())
        model = reexport.recover(bundle)
        h, w = man["input"]["shape"][2:]
        x = random_image(3, h, w)
        mask = torch.from_numpy(masks(h // 4, w // 4)["blob"])[None, None].float()
        sparse = [k for k, st in enumerate(man["stages"], start=1) if st["mode"] == "sparse"]
        self.assertEqual(sparse, [2, 3, 4])
        with torch.no_grad():
            state = model.stage(1, [x])[0]
            for k in sparse:
                st = man["stages"][k - 1]
                plan = json.loads((bundle / st["sparse"]["native"]["file"]).read_text())
                file, shared = native_plan.stored_weights(bundle, native_plan.stage_graphs(st))
                want, _ = native_plan.stage_plan(model, k, state_inputs(st), st["state"], file, shared)
                self.assertEqual(plan, want, f"{bundle.name} stage {k}")
                check_bands(self, plan, st)
                got_state, got_logits = native_plan.interpret(plan, (bundle / file).read_bytes(), state, mask)
                want_state, want_logits = model.stage(k, state, Masks(mask))
                for got, ref in zip(got_state + [got_logits], want_state + [want_logits]):
                    self.assertLessEqual(float((got - ref).abs().max() / ref.abs().max()), REL,
                                         f"{bundle.name} stage {k}")
                state = want_state


if __name__ == "__main__":
    unittest.main()
