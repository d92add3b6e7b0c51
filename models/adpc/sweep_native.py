"""Times a sparse bundle's stages, run by the native kernels (engines/native),
against its dense twin's stages at synthetic operating points, with
`edge bench`, and writes the figures as JSON (plot them with `plot_sparse`).

    /usr/bin/python3 -m models.adpc.sweep_native --edge bin/edge \
        --bundle B --baseline R --active 1,1,1 --active 0.82,0.63,0.38 [--frames 6] \
        --json docs/native-bench-w18.json

Per operating point `--active A2,A3,A4` it runs

    edge bench --providers cpu --threads T --frames N --dispatch D --active A --json \
        --bundle B --baseline R      (B's stage times, the frame/counted ratios)
    edge bench ... --bundle R --baseline B      (R's stage times)

Each run alternates the two bundles frame by frame, so a change of load hits
both alike; `edge bench` reports per-stage medians of its `--bundle` only,
hence the second run with the roles swapped. A stage's speedup is R's stage
time (second run) over B's (first run). The frame ratio, counted ratio and
realized share are the first run's; the second run's frame ratio, inverted,
is kept as `swapped_frame_ratio` (and stage 1, dense in both, as a check of
how much the load moved between the runs). The computed fraction of a stage
is 1 − B's `frozen` there (at the exit resolution). The JSON also holds the
load average before each run, the git commit of the working tree and the raw
reports.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional


def model_name(bundle_name: str) -> str:
    """A short label of the model a bundle holds: "W18-Small", "W48", …
    (the bundle name itself when it is not an HRNet)."""
    parts = bundle_name.split("-")
    if len(parts) >= 2 and parts[0] == "hrnet":
        width = parts[1].upper()
        return f"{width}-Small" if "small" in parts[2:3] else width
    return bundle_name


def point(active: list[float], main: dict, swapped: dict) -> dict:
    """One operating point from the two `edge bench --json` reports: `main`
    timed the sparse bundle against its baseline, `swapped` the baseline
    against the sparse bundle, both at the synthetic masks `active`."""
    for name, rep in (("main", main), ("swapped", swapped)):
        if rep.get("synthetic_masks") != active:
            raise ValueError(f"{name} report: synthetic_masks {rep.get('synthetic_masks')} are not --active {active}")
        if not rep.get("baseline"):
            raise ValueError(f"{name} report has no baseline")
    if (main["bundle"], main["baseline"]) != (swapped["baseline"], swapped["bundle"]):
        raise ValueError(f"swapped report times {swapped['bundle']} against {swapped['baseline']}, "
                         f"not {main['baseline']} against {main['bundle']}")
    n = len(main["stage_ms"])
    if len(swapped["stage_ms"]) != n or len(main["frozen"]) != n or len(main["ran"]) != n:
        raise ValueError(f"stage counts differ: {n} stage times, {len(main['frozen'])} frozen, "
                         f"{len(main['ran'])} ran, {len(swapped['stage_ms'])} baseline stage times")
    stages = []
    for i in range(1, n):
        native, dense = main["stage_ms"][i], swapped["stage_ms"][i]
        stages.append({"stage": i + 1, "computed": 1 - main["frozen"][i], "native_ms": native, "dense_ms": dense,
                       "speedup": dense / native, "ran": main["ran"][i], "baseline_ran": swapped["ran"][i]})
    return {
        "active": active,
        "frame_ms": main["frame_ms"],
        "baseline_frame_ms": main["baseline_frame_ms"],
        "frame_ratio": main["frame_ratio"],
        "swapped_frame_ratio": 1 / swapped["frame_ratio"],
        "counted_ratio": main["counted_ratio"],
        "realized": main.get("realized"),
        "stage1_ms": main["stage_ms"][0],
        "baseline_stage1_ms": swapped["stage_ms"][0],
        "stages": stages,
    }


def markdown(report: dict) -> str:
    """The report as two markdown tables: per stage (computed fraction,
    native and dense stage times, speedup) and per point (frame, counted
    ratio, realized share, load)."""
    m = report["model"]
    rows = [f"| {m} `--active` | stage | computed | native ms | dense ms | speedup |", "|---|---|---|---|---|---|"]
    for pt in report["points"]:
        a = ",".join(f"{v:g}" for v in pt["active"])
        for s in pt["stages"]:
            rows.append(f"| {a} | {s['stage']} | {s['computed']:.2f} | {s['native_ms']:.1f} | {s['dense_ms']:.1f} "
                        f"| {s['speedup']:.2f} |")
    rows += ["", f"| {m} `--active` | frame ms | dense frame ms | frame ratio | swapped run | counted ratio "
             "| realized | load (1 min) |", "|---|---|---|---|---|---|---|---|"]
    for pt in report["points"]:
        a = ",".join(f"{v:g}" for v in pt["active"])
        realized = "–" if pt["realized"] is None else f"{pt['realized']:.2f}"
        rows.append(f"| {a} | {pt['frame_ms']:.0f} | {pt['baseline_frame_ms']:.0f} | {pt['frame_ratio']:.3f} "
                    f"| {pt['swapped_frame_ratio']:.3f} | {pt['counted_ratio']:.3f} | {realized} "
                    f"| {pt['load'][0][0]:.2f} |")
    return "\n".join(rows) + "\n"


def bench(cmd: list[str]) -> dict:
    """Runs one `edge bench --json` and returns its report."""
    print("$", shlex.join(cmd), file=sys.stderr, flush=True)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError(f"{shlex.join(cmd)}: expected one JSON line on stdout, got {len(lines)}")
    return json.loads(lines[0])


def git_state() -> tuple[str, bool]:
    """The commit checked out in the working directory and whether tracked
    files differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip() != ""
    return head, dirty


def parse_active(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--active {s!r}: want computed fractions like 0.82,0.63,0.38")


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.adpc.sweep_native", description=__doc__.split("\n\n")[0])
    p.add_argument("--edge", default="bin/edge", help="the edge binary (built from this working tree)")
    p.add_argument("--bundle", required=True, help="the sparse bundle (stages with native plans)")
    p.add_argument("--baseline", required=True, help="its dense twin (the rh bundle)")
    p.add_argument("--active", type=parse_active, action="append", required=True,
                   help="A2,A3,A4 computed fractions (repeatable)")
    p.add_argument("--frames", type=int, default=6, help="timed passes per run (edge bench --frames)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dispatch", default="sparse", choices=("auto", "sparse", "dense"))
    p.add_argument("--json", required=True, help="write the figures here")
    args = p.parse_args(argv)

    commit, dirty = git_state()
    common = [args.edge, "bench", "--providers", "cpu", "--threads", str(args.threads), "--frames", str(args.frames),
              "--dispatch", args.dispatch, "--json"]
    points = []
    for active in args.active:
        a = ",".join(f"{v:g}" for v in active)
        load = os.getloadavg()
        main_rep = bench(common + ["--active", a, "--bundle", args.bundle, "--baseline", args.baseline])
        swapped_load = os.getloadavg()
        swapped = bench(common + ["--active", a, "--bundle", args.baseline, "--baseline", args.bundle])
        pt = point(active, main_rep, swapped)
        pt["load"] = [load, swapped_load]
        pt["runs"] = [main_rep, swapped]
        points.append(pt)
        print(f"active {a}: frame ratio {pt['frame_ratio']:.3f} (swapped {pt['swapped_frame_ratio']:.3f}), "
              f"counted {pt['counted_ratio']:.3f}, speedups "
              + ", ".join(f"s{s['stage']} {s['speedup']:.2f} at {s['computed']:.2f}" for s in pt["stages"])
              + f"; load {load[0]:.2f}", file=sys.stderr, flush=True)
    report = {
        "model": model_name(points[0]["runs"][0]["bundle"]),
        "bundle": points[0]["runs"][0]["bundle"],
        "baseline": points[0]["runs"][0]["baseline"],
        "providers": "cpu",
        "threads": args.threads,
        "frames": args.frames,
        "dispatch": args.dispatch,
        "commit": commit,
        "dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(["python3", "-m", "models.adpc.sweep_native"] + (sys.argv[1:] if argv is None else argv)),
        "points": points,
    }
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
