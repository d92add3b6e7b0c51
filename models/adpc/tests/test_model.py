"""Model definition: state_dict layouts, masked convolutions, anytime loop."""

from __future__ import annotations

import unittest
from pathlib import Path

import torch

from models.adpc import anytime
from models.adpc.build import build, rh_twin
from models.adpc.config import ARCHS, arch, check_size
from models.adpc.hrnet import ADPCHRNet
from models.adpc.init import random_image
from models.adpc.layers import Masks, MaskedConv2d

REFERENCE = Path(__file__).parent / "reference"
SHORT = {"hrnet_w48": "w48", "hrnet_w18_small_v2": "w18"}


def listing(path: Path) -> list[tuple[str, list[int], str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [(k, [int(d) for d in s.strip("[]").split(",") if d.strip()], t) for k, s, t in rows]


class StateDictTest(unittest.TestCase):
    def test_matches_reference_listings(self):
        for name, short in SHORT.items():
            for variant in ("ee", "rh", "adpc"):
                with self.subTest(arch=name, variant=variant):
                    want = listing(REFERENCE / f"hrnet_{short}_{variant}.state_dict.tsv")
                    got = [(k, list(v.shape), str(v.dtype).replace("torch.", ""))
                           for k, v in ADPCHRNet(arch(name), variant).state_dict().items()]
                    self.assertEqual(len(got), len(want))
                    for i, (g, w) in enumerate(zip(got, want)):
                        self.assertEqual(g, w, f"line {i + 2}")

    def test_tiny_has_all_variants(self):
        for variant in ("ee", "rh", "adpc"):
            m = ADPCHRNet(ARCHS["hrnet_tiny"], variant)
            self.assertGreater(len(m.state_dict()), 0)


class MaskedConvTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.conv = MaskedConv2d(3, 4, kernel_size=3, padding=1, bias=False).eval()
        self.x = torch.randn(1, 3, 9, 11)

    def test_init(self):
        self.assertEqual(float(self.conv.Lambda), 3.0)
        k = self.conv.rbf_kernel()
        self.assertLess(float(k[3, 3]), 1e-30)  # centre excluded
        total = 4 * torch.exp(torch.tensor(-9.0)) + 4 * torch.exp(torch.tensor(-18.0))  # nearest taps dominate
        self.assertAlmostEqual(float(k.sum()), float(total / (total + 1e-5)), places=3)  # the +1e-5 matters at lambda 3
        self.assertAlmostEqual(float(k[3, 2]), float(k[2, 3]))

    def test_computed_positions_equal_plain_conv(self):
        mask = (torch.rand(1, 1, 9, 11) > 0.5).float()
        y = torch.nn.functional.conv2d(self.x, self.conv.weight, padding=1)
        out = self.conv(self.x, Masks(mask))
        self.assertTrue(torch.equal(out[mask.expand_as(out) > 0], y[mask.expand_as(y) > 0]))
        self.assertTrue(torch.equal(self.conv(self.x, None), y))

    def test_frozen_positions_are_rbf_fill(self):
        mask = (torch.rand(1, 1, 9, 11) > 0.5).float()
        mask[0, 0, 4, 5] = 0
        y = torch.nn.functional.conv2d(self.x, self.conv.weight, padding=1)
        out = self.conv(self.x, Masks(mask))
        lam = float(self.conv.Lambda)
        weights, total = {}, 0.0
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                wgt = 0.0 if (dy, dx) == (0, 0) else float(torch.exp(torch.tensor(-lam * lam * (dy * dy + dx * dx))))
                weights[dy, dx] = wgt
                total += wgt
        want = torch.zeros(4)
        for (dy, dx), wgt in weights.items():
            yy, xx = 4 + dy, 5 + dx
            if 0 <= yy < 9 and 0 <= xx < 11 and mask[0, 0, yy, xx] > 0:
                want += wgt / (total + 1e-5) * y[0, :, yy, xx]
        torch.testing.assert_close(out[0, :, 4, 5], want, rtol=1e-5, atol=1e-6)

    def test_mask_resized_nearest(self):
        full = (torch.rand(1, 1, 8, 16) > 0.5).float()
        m = Masks(full)
        torch.testing.assert_close(m.at(4, 8), torch.nn.functional.interpolate(full, size=(4, 8)))
        torch.testing.assert_close(m.at(1, 2), torch.nn.functional.interpolate(full, size=(1, 2)))
        self.assertIs(m.at(8, 16), full)


class AnytimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.adpc = build("hrnet_tiny", "adpc", seed=5)
        cls.x = random_image(11, 64, 128)

    def test_copy_and_monotone_masks(self):
        r = anytime.run(self.adpc, self.x, 0.8)
        self.assertEqual(len(r.merged), 4)
        self.assertEqual(len(r.masks), 3)
        frozen = [1 - float(m.mean()) for m in r.masks]
        self.assertTrue(0.05 < frozen[0] < 0.95, frozen)
        for k in range(1, 4):
            m = r.masks[k - 1]
            frozen_px = (m == 0).expand_as(r.merged[k])
            self.assertTrue(torch.equal(r.merged[k][frozen_px], r.merged[k - 1][frozen_px]))
            if k > 1:  # once frozen, frozen
                self.assertTrue(bool((r.masks[k - 1] <= r.masks[k - 2]).all()))

    def test_threshold_one_is_rh(self):
        rh = rh_twin(self.adpc)
        a = anytime.run(self.adpc, self.x, 1.0)
        b = anytime.run(rh, self.x, None)
        for k in range(4):
            self.assertTrue(torch.equal(a.merged[k], b.merged[k]), f"exit {k + 1}")

    def test_low_threshold_freezes_after_exit1(self):
        r = anytime.run(self.adpc, self.x, 1 / 19 - 1e-3)
        for k in range(1, 4):
            self.assertTrue(torch.equal(r.merged[k], r.merged[0]))
            self.assertEqual(float(r.masks[k - 1].max()), 0.0)

    def test_dense_models_ignore_threshold(self):
        rh = rh_twin(self.adpc)
        r = anytime.run(rh, self.x, 0.5)
        for k in range(4):
            self.assertTrue(torch.equal(r.merged[k], r.raw[k]))

    def test_no_hidden_state(self):
        before = {k: v.clone() for k, v in self.adpc.state_dict().items()}
        attrs = {n: set(vars(m)) for n, m in self.adpc.named_modules()}
        a = anytime.run(self.adpc, self.x, 0.8)
        anytime.run(self.adpc, random_image(3, 128, 64), 0.3)  # another size and threshold
        b = anytime.run(self.adpc, self.x, 0.8)
        for k in range(4):
            self.assertTrue(torch.equal(a.merged[k], b.merged[k]))
        for k, v in self.adpc.state_dict().items():
            self.assertTrue(torch.equal(v, before[k]), k)
        self.assertEqual(attrs, {n: set(vars(m)) for n, m in self.adpc.named_modules()})

    def test_rh_seed_shares_adpc_weights(self):
        rh = build("hrnet_tiny", "rh", seed=5)
        derived = rh_twin(self.adpc).state_dict()
        for k, v in rh.state_dict().items():
            self.assertTrue(torch.equal(v, derived[k]), k)

    def test_size_check(self):
        check_size(64, 128)
        for h, w in ((60, 128), (64, 100), (0, 64)):
            with self.assertRaises(ValueError):
                check_size(h, w)


if __name__ == "__main__":
    unittest.main()
