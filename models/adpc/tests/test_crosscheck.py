"""The cross-check's own logic on the tiny configuration, against ONNX
Runtime through ctypes (skipped when the library is absent)."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from models.adpc import crosscheck
from models.adpc.ort import ORTUnavailable, Runtime


class CrosscheckTest(unittest.TestCase):
    def test_tiny_against_ort(self):
        try:
            Runtime(threads=1)
        except ORTUnavailable as e:
            self.skipTest(str(e))
        torch.set_num_threads(1)
        lines: list[str] = []
        with tempfile.TemporaryDirectory() as d:
            crosscheck.check_arch("hrnet_tiny", crosscheck.ort_runner(), Path(d), lines.append, size=(64, 128))
        self.assertEqual(len(lines), 6, lines)
        self.assertTrue(all(line.startswith("ok ") for line in lines), lines)

    def test_compare_rejects_drift_and_far_flips(self):
        rng = np.random.default_rng(0)
        logits = [rng.normal(size=(1, 19, 128, 128)).astype(np.float32) for _ in range(4)]
        masks = [np.ones((128, 128), np.uint8) for _ in range(3)]
        confs = [np.full((128, 128), 0.5, np.float32) for _ in range(3)]
        want = crosscheck.Torch(logits, masks, confs)
        crosscheck.compare("same", want, (logits, masks), 0.9)
        drift = [l * (1 + 1e-3) for l in logits]
        with self.assertRaises(crosscheck.Failure):
            crosscheck.compare("drift", want, (drift, masks), 0.9)
        flipped = [m.copy() for m in masks]
        flipped[0][0, 0] = 0
        with self.assertRaises(crosscheck.Failure):
            crosscheck.compare("flip", want, (logits, flipped), 0.9)
        near = [c.copy() for c in confs]
        near[0][0, 0] = 0.9 + 5e-7  # a tie, 1 pixel in 16384: allowed
        crosscheck.compare("tie", crosscheck.Torch(logits, masks, near), (logits, flipped), 0.9)


if __name__ == "__main__":
    unittest.main()
