#!/usr/bin/env python3
"""How long the run report takes to render, as the trainer renders it at every epoch end and every minute.

usage: python bench/report.py --run_dir RUN_DIR [--extra_grids 100] [--repeats 5]
Copies RUN_DIR (a run directory train.py wrote) to a temporary directory, adds --extra_grids copies of its newest
fixed-noise grid as if the run had been sampled that many more times (a long run's report has one GIF frame per
grid), renders once to warm up (imports matplotlib), then --repeats times, and prints one JSON line: the CPU, grid
count, and the median and min seconds per render. The original run directory is never written to.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True)
    p.add_argument("--extra_grids", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    from src.run.directory import SAMPLES_DIR
    from src.report import render_report

    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        shutil.copytree(a.run_dir, run, ignore=shutil.ignore_patterns("ckpt", "report", "index.html", ".lock"))
        samples = os.path.join(run, SAMPLES_DIR)
        grids = sorted(n for n in os.listdir(samples) if n.startswith("fake_step_"))
        if not grids:
            sys.exit(f"{a.run_dir} has no fixed-noise grids ({SAMPLES_DIR}/fake_step_*.png)")
        last = int(grids[-1][len("fake_step_"):-len(".png")])
        for i in range(1, a.extra_grids + 1):
            shutil.copy(os.path.join(samples, grids[-1]), os.path.join(samples, f"fake_step_{last + i:08d}.png"))
        render_report(run)
        times = []
        for _ in range(a.repeats):
            started = time.perf_counter()
            render_report(run)
            times.append(time.perf_counter() - started)
    print(json.dumps({"cpu": cpu_name(), "grids": len(grids) + a.extra_grids,
                      "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "repeats": a.repeats}))


if __name__ == "__main__":
    main()
