"""sweep_native: a point from the two `edge bench --json` reports of an
operating point (the sparse bundle against its twin, then swapped), and
plot_sparse's curves from the result."""

from __future__ import annotations

import unittest

from models.adpc import plot_sparse, sweep_native

ACTIVE = [0.82, 0.63, 0.38]


def report(bundle: str, baseline: str, stage_ms: list[float], frozen: list[float], ran: str,
           frame_ms: float, baseline_frame_ms: float) -> dict:
    """An `edge bench --json` report as cmd/edge/bench.go writes it."""
    return {"bundle": bundle, "provider": "cpu", "frames": 6, "frame_ms": frame_ms, "stage_ms": stage_ms,
            "frozen": frozen, "baseline": baseline, "baseline_frame_ms": baseline_frame_ms,
            "frame_ratio": frame_ms / baseline_frame_ms,
            "ran": [{"dense": 6}] + [{ran: 6}] * (len(stage_ms) - 1), "gmacs": 12.0, "baseline_gmacs": 16.0,
            "counted_ratio": 0.75, "realized": (1 - frame_ms / baseline_frame_ms) / 0.25,
            "synthetic_masks": ACTIVE, "stages": []}


SPARSE, DENSE = "hrnet-w18-small-v2-adpc-cityscapes", "hrnet-w18-small-v2-rh-cityscapes"
MAIN = report(SPARSE, DENSE, [50, 20, 30, 40], [0, 0.18, 0.37, 0.62], "sparse", 140, 200)
SWAPPED = report(DENSE, SPARSE, [52, 40, 45, 80], [0, 0, 0, 0], "dense", 210, 150)


class PointTest(unittest.TestCase):
    def test_stages(self):
        pt = sweep_native.point(ACTIVE, MAIN, SWAPPED)
        self.assertEqual([s["stage"] for s in pt["stages"]], [2, 3, 4])
        for s, computed, native, dense in zip(pt["stages"], [0.82, 0.63, 0.38], [20, 30, 40], [40, 45, 80]):
            self.assertAlmostEqual(s["computed"], computed)
            self.assertEqual((s["native_ms"], s["dense_ms"]), (native, dense))
            self.assertAlmostEqual(s["speedup"], dense / native)
            self.assertEqual((s["ran"], s["baseline_ran"]), ({"sparse": 6}, {"dense": 6}))
        self.assertEqual((pt["stage1_ms"], pt["baseline_stage1_ms"]), (50, 52))

    def test_frame_figures_are_the_main_run(self):
        pt = sweep_native.point(ACTIVE, MAIN, SWAPPED)
        self.assertAlmostEqual(pt["frame_ratio"], 0.7)
        self.assertAlmostEqual(pt["swapped_frame_ratio"], 150 / 210)
        self.assertEqual((pt["frame_ms"], pt["baseline_frame_ms"], pt["counted_ratio"]), (140, 200, 0.75))
        self.assertAlmostEqual(pt["realized"], 1.2)

    def test_mismatched_reports(self):
        with self.assertRaisesRegex(ValueError, "swapped report times"):
            sweep_native.point(ACTIVE, MAIN, MAIN)
        with self.assertRaisesRegex(ValueError, "synthetic_masks"):
            sweep_native.point([1.0, 1.0, 1.0], MAIN, SWAPPED)
        short = dict(SWAPPED, stage_ms=[52, 40, 45])
        with self.assertRaisesRegex(ValueError, "stage counts differ"):
            sweep_native.point(ACTIVE, MAIN, short)
        with self.assertRaisesRegex(ValueError, "no baseline"):
            sweep_native.point(ACTIVE, dict(MAIN, baseline=""), SWAPPED)

    def test_model_name(self):
        self.assertEqual(sweep_native.model_name(SPARSE), "W18-Small")
        self.assertEqual(sweep_native.model_name("hrnet-w48-adpc-cityscapes"), "W48")
        self.assertEqual(sweep_native.model_name("fashion-seg-adpc"), "fashion-seg-adpc")


class PlotTest(unittest.TestCase):
    def test_curves_of_a_sweep(self):
        low = dict(MAIN, synthetic_masks=[0.4, 0.2, 0.1], frozen=[0, 0.6, 0.8, 0.9])
        low_swapped = dict(SWAPPED, synthetic_masks=[0.4, 0.2, 0.1])
        points = [sweep_native.point(ACTIVE, MAIN, SWAPPED), sweep_native.point([0.4, 0.2, 0.1], low, low_swapped)]
        for pt in points:
            pt["load"] = [(0.5, 0.5, 0.5)] * 2
        rep = {"model": "W18-Small", "threads": 2, "points": points}
        cs = plot_sparse.curves([rep])
        self.assertEqual(list(cs), [f"W18-Small native stage {k}" for k in (2, 3, 4)])
        stage4 = cs["W18-Small native stage 4"]
        self.assertEqual([round(a, 2) for a, _ in stage4], [0.1, 0.38])  # sorted by computed fraction
        self.assertEqual([sp for _, sp in stage4], [2.0, 2.0])

    def test_markdown(self):
        pt = sweep_native.point(ACTIVE, MAIN, SWAPPED)
        pt["load"] = [(0.5, 0.5, 0.5)] * 2
        md = sweep_native.markdown({"model": "W18-Small", "points": [pt]})
        self.assertIn("| 0.82,0.63,0.38 | 4 | 0.38 | 40.0 | 80.0 | 2.00 |", md)
        self.assertIn("| 0.82,0.63,0.38 | 140 | 200 | 0.700 | 0.714 | 0.750 | 1.20 | 0.50 |", md)


if __name__ == "__main__":
    unittest.main()
