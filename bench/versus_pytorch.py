#!/usr/bin/env python3
"""Our training step against PyTorch's, alternated in one shell: PyTorch, ours, PyTorch, ours, ..., PyTorch.

Runs bench/train_step.py (ours) and the PyTorch reference script (any script that takes --batch_size, --image_size,
--nc, --steps and prints one JSON line with median_ms, e.g. ../shared/bench/torch_reference.py) as separate
processes, each configuration `--rounds` times, starting and ending with PyTorch, so that a drift of the machine
shows on both sides. Prints every run's JSON line, then one summary line per configuration:
{"image_size", "nc", "pytorch_ms": [...], "ours_ms": [...], "ratio": median(ours) / median(pytorch)} (medians of
the runs' medians, so that one run disturbed by the machine does not decide the ratio).

usage: python bench/versus_pytorch.py --torch_python /path/to/venv-with-torch/bin/python
           [--torch_script ../shared/bench/torch_reference.py] [--configs 32x3 64x3 32x1 64x1]
           [--rounds 3] [--steps 9] [--batch_size 128]
PyTorch is never a dependency of this project: it runs from the interpreter you name.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def median_ms(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr.strip()[-2000:]}")
    print(lines[-1], flush=True)
    return json.loads(lines[-1])["median_ms"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch_python", required=True, help="a Python interpreter that has torch installed")
    p.add_argument("--torch_script", default=os.path.join(HERE, "..", "..", "shared", "bench", "torch_reference.py"))
    p.add_argument("--configs", nargs="+", default=["32x3", "64x3", "32x1", "64x1"], help="IMAGE_SIZExNC")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--batch_size", type=int, default=128)
    a = p.parse_args()
    if not os.path.exists(a.torch_script):
        p.error(f"no PyTorch reference script at {a.torch_script} (pass --torch_script)")
    bad = [c for c in a.configs if not re.fullmatch(r"(32|64)x[13]", c)]
    if bad:
        p.error(f"--configs takes IMAGE_SIZExNC with size 32 or 64 and nc 1 or 3, not {' '.join(bad)}")
    for config in a.configs:
        size, nc = config.split("x")
        shape = ["--batch_size", str(a.batch_size), "--image_size", size, "--nc", nc, "--steps", str(a.steps)]
        pytorch = [a.torch_python, a.torch_script] + shape
        ours = [sys.executable, os.path.join(HERE, "train_step.py")] + shape
        torch_ms, ours_ms = [median_ms(pytorch)], []
        for _ in range(a.rounds):
            ours_ms.append(median_ms(ours))
            torch_ms.append(median_ms(pytorch))
        ratio = statistics.median(ours_ms) / statistics.median(torch_ms)
        print(json.dumps({"image_size": int(size), "nc": int(nc), "pytorch_ms": torch_ms, "ours_ms": ours_ms,
                          "ratio": round(ratio, 2)}), flush=True)


if __name__ == "__main__":
    main()
