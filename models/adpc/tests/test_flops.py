"""FLOP report: the paper's figures at 1024x2048, and the manifest's MACs."""

from __future__ import annotations

import io
import json
import unittest
from contextlib import redirect_stdout

from models.adpc import flops
from models.adpc.config import arch
from models.adpc.hrnet import ADPCHRNet

# GFLOPs (MACs / 2^30) to one decimal: cumulative per exit, then the base model.
PAPER = {
    ("hrnet_w48", "rh"): ([41.9, 105.6, 368.0, 701.3], 696.2),
    ("hrnet_w48", "adpc"): ([41.9, 105.6, 368.0, 701.3], 696.2),  # dense (nothing frozen)
    ("hrnet_w48", "ee"): ([48.4, 113.5, 388.9, 722.2], 696.2),
    ("hrnet_w18_small_v2", "rh"): ([23.7, 34.7, 49.9, 73.2], 71.6),
    ("hrnet_w18_small_v2", "ee"): ([31.4, 42.6, 59.5, 82.9], 71.6),
}


class FlopsTest(unittest.TestCase):
    def test_paper_figures(self):
        for (name, variant), (cumulative, base) in PAPER.items():
            with self.subTest(arch=name, variant=variant):
                out = io.StringIO()
                with redirect_stdout(out):
                    flops.main(["--arch", name, "--variant", variant, "--json"])
                got = json.loads(out.getvalue())
                self.assertEqual([round(g, 1) for g in got["cumulative_gflops"]], cumulative)
                self.assertEqual(round(got["base_gflops"], 1), base)

    def test_scaled_count_is_exact(self):
        model = ADPCHRNet(arch("hrnet_tiny"), "adpc")
        big = flops.report(flops.count_convs(model, 256, 512))
        small = flops.report(flops.count_convs(model, 64, 128))
        self.assertEqual(big.cumulative_macs, [16 * m for m in small.cumulative_macs])

    def test_stage_macs_sum_to_report(self):
        model = ADPCHRNet(arch("hrnet_w18_small_v2"), "adpc")
        counts = flops.count_convs(model, 256, 512)
        r = flops.report(counts)
        total = 0
        for k in range(1, 5):
            m = flops.stage_macs(counts, k)
            total += m["fixed"] + sum(v["macs"] for v in m["masked"].values())
            self.assertEqual(total, r.cumulative_macs[k - 1])
            if k == 1:
                self.assertEqual(m["masked"], {})
            else:
                self.assertEqual(m["fixed"], 0)
                self.assertTrue(set(m["masked"]) <= {"4", "8", "16", "32"}, m["masked"].keys())

    def test_rejects_bad_size(self):
        with self.assertRaises(ValueError):
            flops.count_convs(ADPCHRNet(arch("hrnet_tiny"), "rh"), 100, 128)


if __name__ == "__main__":
    unittest.main()
