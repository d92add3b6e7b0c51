"""Checkpoint loading: layouts, prefixes and error messages."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch

from models.adpc.build import build
from models.adpc.checkpoint import CheckpointError, extract_state_dict, load_file, load_into
from models.adpc.config import arch
from models.adpc.hrnet import ADPCHRNet


class CheckpointTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = build("hrnet_tiny", "adpc", seed=2)
        cls.sd = cls.src.state_dict()
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def roundtrip(self, obj) -> ADPCHRNet:
        path = Path(self.dir.name) / "ckpt.pth"
        torch.save(obj, path)
        model = build("hrnet_tiny", "adpc", checkpoint=path)
        for k, v in model.state_dict().items():
            self.assertTrue(torch.equal(v, self.sd[k]), k)
        return model

    def test_layouts(self):
        self.roundtrip(dict(self.sd))
        self.roundtrip({"state_dict": dict(self.sd), "epoch": 3})
        self.roundtrip({f"module.{k}": v for k, v in self.sd.items()})
        self.roundtrip({"state_dict": {f"model.{k}": v for k, v in self.sd.items()}, "best_mIoU": 0.8})
        self.roundtrip({f"module.model.{k}": v for k, v in self.sd.items()})
        # HRNet-seg's FullModel: model.* plus the loss's class weights.
        full = {f"model.{k}": v for k, v in self.sd.items()}
        full["loss.criterion.weight"] = torch.ones(19)
        self.roundtrip({"epoch": 484, "state_dict": full})

    def test_errors_list_keys(self):
        model = ADPCHRNet(arch("hrnet_tiny"), "adpc")
        sd = dict(self.sd)
        missing = [k for k in sd if k.startswith("stage4.")]
        for k in missing:
            del sd[k]
        sd["extra.weight"] = torch.zeros(1)
        sd["conv1.weight"] = torch.zeros(2, 3, 3, 3)
        with self.assertRaises(CheckpointError) as cm:
            load_into(model, sd)
        msg = str(cm.exception)
        self.assertIn(f"missing: {missing[0]}", msg)
        self.assertIn(f"({len(missing)} in all)", msg)
        self.assertIn("unexpected: extra.weight (1)", msg)
        self.assertIn("shape mismatch: conv1.weight [2, 3, 3, 3] vs model [16, 3, 3, 3]", msg)

    def test_variant_mismatch_names_file(self):
        path = Path(self.dir.name) / "adpc.pth"
        torch.save(dict(self.sd), path)
        model = ADPCHRNet(arch("hrnet_tiny"), "rh")
        with self.assertRaisesRegex(CheckpointError, r"adpc\.pth: .*unexpected: .*Lambda"):
            load_file(model, path)

    def test_not_a_state_dict(self):
        with self.assertRaises(CheckpointError):
            extract_state_dict([1, 2])
        with self.assertRaises(CheckpointError):
            extract_state_dict({"epoch": 1})


if __name__ == "__main__":
    unittest.main()
