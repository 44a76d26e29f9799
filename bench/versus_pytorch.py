#!/usr/bin/env python3
"""Our training step against PyTorch's, alternated in one shell: PyTorch, ours, PyTorch, ours, ..., PyTorch.

Runs bench/train_step.py (ours) and the PyTorch reference script (any script that takes --batch_size, --image_size,
--nc, --ngf, --ndf, --steps and prints one JSON line with median_ms; by default bench/torch_reference.py) as
separate processes, each configuration `--rounds` times, starting and ending with PyTorch, so that a drift of the
machine shows on both sides.

It prints, as JSON lines:
  1. the machine: CPU model, instruction set (AVX-512 / AVX2 / ...), cores, load average;
  2. the measured sgemm peak: the best GFLOP/s of a 4096^3 float32 matrix product, in PyTorch (torch.mm) and in
     MindSpore (ops.matmul, oneDNN), at the default thread count, before the first and after the last configuration;
  3. every run's own JSON line;
  4. one summary line per configuration: {"config", "image_size", "nc", "ngf", "batch_size", "pytorch_ms": [...],
     "ours_ms": [...], "ratio": median(ours) / median(pytorch), "gflop": the reference step's FLOPs,
     "ours_gflops" / "pytorch_gflops": those FLOPs over each median time, "ours_of_peak": ours_gflops / the first
     sgemm peak,
     "load": the load average when the configuration ended}.
The ratio uses medians of the runs' medians, so that one run disturbed by the machine does not decide it.

FLOPs are counted as PyTorch's FLOP counter counts the reference step (convolutions and matrix products, 2 per
multiply-add): G forward once; D forward on real and on fake and its backward (weights; data but for the first
layer); D forward on the fake again for G's loss, and that backward through D (weights and data) and G (weights,
data but for the first layer). Our step skips D's weight gradient in the G step, so ours does ~6-8% less work;
the figure is the same for both sides, so the GFLOP/s compare like for like.

--bf16: both sides in mixed precision, as a user on a CPU with native bf16 (AVX512-BF16 or AMX) would train: ours
with --amp_level O1 (bf16 convolutions, fp32 accumulation), PyTorch under torch.autocast("cpu", dtype=torch.bfloat16)
(the reference script's --autocast bf16). Every line then says "precision": "bf16"; the sgemm peak, an fp32 figure,
is not measured.

Configurations: SIZExNC[:WIDTH][@BATCH], e.g. 32x3 (model-zoo widths 64, --batch_size) or 32x1:32@64 (the narrow
nets of the digits demo and MNIST-sized runs, ngf = ndf = 32, batch 64).

usage: python bench/versus_pytorch.py --torch_python /path/to/venv-with-torch/bin/python
           [--torch_script bench/torch_reference.py] [--configs 32x3 ... | --narrow]
           [--rounds 3] [--steps 9] [--batch_size 128] [--threads N] [--no_peak] [--bf16]
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
MODEL_ZOO = ["32x3", "64x3", "32x1", "64x1"]
NARROW = ["32x1:32", "32x3:32", "32x1:32@64", "32x3:32@64"]
CONFIG = re.compile(r"(32|64)x([13])(?::(\d+))?(?:@(\d+))?")

PEAK_TORCH = """
import json, time, torch
if THREADS:
    torch.set_num_threads(THREADS)
n = 4096
a, b = torch.randn(n, n), torch.randn(n, n)
best = 0.0
for _ in range(6):
    t = time.perf_counter(); torch.mm(a, b); best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
print(json.dumps({"sgemm": "torch.mm", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "gflops": round(best, 1)}))
"""

PEAK_MINDSPORE = """
import json, time
import numpy as np
import mindspore as ms
ms.set_device("CPU")
if THREADS:
    ms.set_context(runtime_num_threads=THREADS)
n = 4096
a = ms.Tensor(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
b = ms.Tensor(np.random.default_rng(1).standard_normal((n, n), dtype=np.float32))
best = 0.0
for _ in range(6):
    t = time.perf_counter(); ms.ops.matmul(a, b).asnumpy(); best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
print(json.dumps({"sgemm": "mindspore ops.matmul", "mindspore": ms.__version__, "gflops": round(best, 1)}))
"""


def cpu_description():
    """{"cpu": model name, "isa": the widest vector instruction set, "flags": the relevant flags, "cores": the
    machine's, and "cores_usable" when this process is pinned to fewer}."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    if "amx_tile" in flags:
        isa = "AVX-512 + AMX"
    elif "avx512f" in flags:
        isa = "AVX-512" + (" + AVX512-BF16" if "avx512_bf16" in flags else "")
    elif "avx2" in flags:
        isa = "AVX2" + (" + FMA" if "fma" in flags else "")
    elif "avx" in flags:
        isa = "AVX"
    else:
        isa = "SSE or other"
    relevant = sorted(f for f in flags if f.startswith(("avx", "amx")) or f == "fma")
    # An instruction-set cap in the environment (oneDNN's, for both frameworks; MKL's, for PyTorch's matrix products)
    # makes this CPU stand in for a narrower one: say so next to the ISA.
    caps = [f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
            if os.environ.get(name)]
    if caps:
        isa += f" (capped: {', '.join(caps)})"
    described = {"cpu": model, "isa": isa, "flags": " ".join(relevant), "cores": os.cpu_count()}
    usable = len(os.sched_getaffinity(0))
    if usable != os.cpu_count():  # pinned (taskset): the machine's cores, and those this process may use
        described["cores_usable"] = usable
    return described


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def step_gflop(image_size, nc, ngf, ndf, batch_size, nz=100):
    """FLOPs (in GFLOP) of one reference training step, counted as PyTorch's FLOP counter counts it (see above)."""
    def conv(cin, cout, out_hw, k=4):  # one pass of a convolution, or of a transposed one given its input size
        return 2 * batch_size * out_hw * out_hw * cin * cout * k * k

    mult = {32: [8, 4, 2], 64: [8, 4, 2, 1]}[image_size]
    g = [conv(nz, ngf * mult[0], 1)]  # the transposed conv of the 1x1 latent (its input size: 1)
    hw = 4
    for a, b in zip(mult, mult[1:]):
        g.append(conv(ngf * a, ngf * b, hw))
        hw *= 2
    g.append(conv(ngf * mult[-1], nc, hw))
    dmult = {32: [2, 4, 8], 64: [1, 2, 4, 8]}[image_size]
    d, hw, cin = [], image_size, nc
    for m in dmult:
        hw //= 2
        d.append(conv(cin, ndf * m, hw))
        cin = ndf * m
    d.append(conv(cin, 1, 1))
    fg, fd = sum(g), sum(d)
    total = 3 * fg - g[0] + 9 * fd - 2 * d[0]
    return total / 1e9


def run_json(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr.strip()[-2000:]}")
    print(lines[-1], flush=True)
    return json.loads(lines[-1])


def sgemm_peak(torch_python, threads=0):
    """The best of PyTorch's and MindSpore's measured sgemm GFLOP/s (each printed)."""
    results = [run_json([torch_python, "-c", PEAK_TORCH.replace("THREADS", str(threads))]),
               run_json([sys.executable, "-c", PEAK_MINDSPORE.replace("THREADS", str(threads))])]
    return max(r["gflops"] for r in results)


def parse_config(text, batch_size):
    m = CONFIG.fullmatch(text)
    if not m:
        return None
    size, nc, width, batch = m.groups()
    return {"config": text, "image_size": int(size), "nc": int(nc), "ngf": int(width or 64), "ndf": int(width or 64),
            "batch_size": int(batch or batch_size)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch_python", required=True, help="a Python interpreter that has torch installed")
    p.add_argument("--torch_script", default=os.path.join(HERE, "torch_reference.py"))
    p.add_argument("--configs", nargs="+", default=MODEL_ZOO + NARROW, help="SIZExNC[:WIDTH][@BATCH]")
    p.add_argument("--narrow", action="store_true", help=f"only the narrow nets: {' '.join(NARROW)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--no_peak", action="store_true", help="skip the sgemm peak measurement")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for both sides (0: each framework's default, all cores); 1 compares per-core speed, "
                        "which other processes on the machine distort far less than PyTorch's spinning OpenMP threads")
    p.add_argument("--bf16", action="store_true",
                   help="ours with --amp_level O1 against PyTorch's autocast-bf16 (a CPU with native bf16)")
    a = p.parse_args()
    if not os.path.exists(a.torch_script):
        p.error(f"no PyTorch reference script at {a.torch_script} (pass --torch_script)")
    configs = [parse_config(c, a.batch_size) for c in (NARROW if a.narrow else a.configs)]
    bad = [c for c, parsed in zip(a.configs, configs) if parsed is None]
    if bad:
        p.error(f"--configs takes SIZExNC[:WIDTH][@BATCH] with size 32 or 64 and nc 1 or 3, not {' '.join(bad)}")

    machine = cpu_description()
    precision = "bf16" if a.bf16 else "fp32"
    print(json.dumps({**machine, "precision": precision, "load": load_average()}), flush=True)
    measure_peak = not (a.no_peak or a.bf16)
    peaks = [sgemm_peak(a.torch_python, a.threads)] if measure_peak else []
    summaries = []
    for c in configs:
        shape = ["--batch_size", str(c["batch_size"]), "--image_size", str(c["image_size"]), "--nc", str(c["nc"]),
                 "--ngf", str(c["ngf"]), "--ndf", str(c["ndf"]), "--steps", str(a.steps)]
        threads = ["--threads", str(a.threads)] if a.threads else []
        pytorch = [a.torch_python, a.torch_script] + shape + threads + (["--autocast", "bf16"] if a.bf16 else [])
        ours = [sys.executable, os.path.join(HERE, "train_step.py")] + shape + threads + (
            ["--amp_level", "O1"] if a.bf16 else [])
        torch_ms, ours_ms = [run_json(pytorch)["median_ms"]], []
        for _ in range(a.rounds):
            ours_ms.append(run_json(ours)["median_ms"])
            torch_ms.append(run_json(pytorch)["median_ms"])
        ours_median, torch_median = statistics.median(ours_ms), statistics.median(torch_ms)
        gflop = step_gflop(c["image_size"], c["nc"], c["ngf"], c["ndf"], c["batch_size"])
        summary = {**c, "precision": precision, "pytorch_ms": torch_ms, "ours_ms": ours_ms, "ratio": round(ours_median / torch_median, 2),
                   "gflop": round(gflop, 1), "ours_gflops": round(1000 * gflop / ours_median, 1),
                   "pytorch_gflops": round(1000 * gflop / torch_median, 1), "load": load_average()}
        if peaks:
            summary["ours_of_peak"] = round(summary["ours_gflops"] / peaks[0], 2)
        summaries.append(summary)
        print(json.dumps(summary), flush=True)
    if measure_peak:
        peaks.append(sgemm_peak(a.torch_python, a.threads))
    peak = max(peaks) if peaks else None
    print(f"\nsummary ({precision}): {machine['cpu']}, {machine['isa']}, {machine['cores']} cores, "
          f"{a.threads or 'default'} threads; load average now "
          f"{load_average()}; sgemm peak {peak or '-'} GFLOP/s (4096^3, the better of PyTorch and MindSpore; "
          f"before / after the runs: {' / '.join(str(x) for x in peaks) or 'not measured'})")
    print(f"{'config':<12} {'GFLOP':>6} {'PyTorch ms':>11} {'ours ms':>8} {'ratio':>6} {'ours GFLOP/s':>13} "
          f"{'PyTorch GFLOP/s':>16} {'ours % of peak':>15}")
    for s in summaries:
        of_peak = f"{100 * s['ours_gflops'] / peak:.0f}%" if peak else "-"
        print(f"{s['config']:<12} {s['gflop']:>6} {statistics.median(s['pytorch_ms']):>11,.0f} "
              f"{statistics.median(s['ours_ms']):>8,.0f} {s['ratio']:>6} {s['ours_gflops']:>13} "
              f"{s['pytorch_gflops']:>16} {of_peak:>15}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
