"""Datasets, metrics and the training forward of models/adpc (issue 4)."""

from __future__ import annotations

import unittest

import numpy as np
import torch

from models.adpc.config import arch
from models.adpc.data import pose, scenes
from models.adpc.evaluate import MACCounter, centre_labels, confusion, miou
from models.adpc.hrnet import ADPCHRNet
from models.adpc.tasks import Task, confidence_mask, forward


class ScenesTest(unittest.TestCase):
    def test_deterministic_and_labelled(self) -> None:
        a = scenes.SceneSet("test", 1).scene(3)
        b = scenes.SceneSet("test", 1).scene(3)
        c = scenes.SceneSet("test", 2).scene(3)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        self.assertFalse(np.array_equal(a[0], c[0]))
        img, lab = a
        self.assertEqual(img.shape, (128, 256, 3))
        self.assertEqual(lab.shape, (128, 256))
        self.assertTrue(set(np.unique(lab)) <= set(range(11)) | {scenes.IGNORE})
        self.assertIn(scenes.BACKGROUND, np.unique(lab))

    def test_splits_differ(self) -> None:
        tr = scenes.SceneSet("train", 1).scene(0)[0]
        te = scenes.SceneSet("test", 1).scene(0)[0]
        self.assertFalse(np.array_equal(tr, te))


class PoseTest(unittest.TestCase):
    def test_joints_inside_and_decodable(self) -> None:
        ds = pose.PoseSet("test", 1)
        for i in range(5):
            img, joints = ds.sample(i)
            self.assertEqual(joints.shape, (16, 2))
            self.assertTrue((joints >= 0).all() and (joints[:, 0] < 128).all() and (joints[:, 1] < 128).all())
            heat = pose.heatmaps(joints, 128, 128)
            got = pose.decode(heat)
            self.assertTrue(pose.pckh(got, joints).all(), f"figure {i}: {np.abs(got - joints).max()}")

    def test_pckh_limit(self) -> None:
        gt = np.zeros((16, 2))
        gt[pose.HEAD[1]] = (0, 10)
        pred = gt.copy()
        pred[0] = (3, 4)  # exactly 5 = 0.5 x head
        pred[1] = (3, 4.1)
        ok = pose.pckh(pred, gt)
        self.assertTrue(ok[0])
        self.assertFalse(ok[1])


class MetricsTest(unittest.TestCase):
    def test_miou(self) -> None:
        conf = confusion(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]), 3)
        self.assertAlmostEqual(miou(conf), 100 / 3)
        conf = confusion(np.array([0, 1]), np.array([0, 255]), 2)
        self.assertEqual(miou(conf), 100)

    def test_centre_labels(self) -> None:
        lab = np.arange(32, dtype=np.uint8).reshape(4, 8)
        np.testing.assert_array_equal(centre_labels(lab), [[18, 22]])


class ForwardTest(unittest.TestCase):
    def test_masks_follow_confidence_and_save_macs(self) -> None:
        torch.manual_seed(0)
        model = ADPCHRNet(arch("hrnet_tiny"), "adpc", 11).eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            merged, masks = forward(model, x, "seg", 0.0)  # nothing is that unconfident: all frozen
        for m in masks:
            self.assertEqual(float(m.sum()), 0)
        for k in range(1, 4):
            torch.testing.assert_close(merged[k], merged[0])
        counter = MACCounter(model, 64, 64)
        dense = sum(counter.per_stage([None, None, None]))
        frozen = sum(counter.per_stage([m[0, 0].numpy() for m in masks]))
        self.assertLess(frozen, dense)
        self.assertEqual(frozen, counter.per_stage([None] * 3)[0] + sum(
            s["fixed"] for s in counter.stages[1:]))

    def test_heatmap_peak_mask(self) -> None:
        heat = torch.zeros(1, 16, 2, 2)
        heat[0, 3, 0, 1] = 0.5
        m = confidence_mask(heat, "pose", 0.1)
        self.assertEqual(m[0, 0].tolist(), [[0.0, 1.0], [0.0, 0.0]])

    def test_pose_batch_shapes(self) -> None:
        x, y = Task("pose", 1).batch("train", [0, 1])
        self.assertEqual(tuple(x.shape), (2, 3, 128, 128))
        self.assertEqual(tuple(y.shape), (2, 16, 32, 32))


if __name__ == "__main__":
    unittest.main()
