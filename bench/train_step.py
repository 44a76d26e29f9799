#!/usr/bin/env python3
"""Time the project's real DCGAN training step (the one train.py runs) and print one JSON line.

The step is built by src.trainer.build_training_step from a config resolved exactly as train.py resolves it
(the `fake` dataset's dict, model-zoo widths), with the same device setup (src/cpu/device.py), so the fast CPU layers
are chosen as in training. Warm-up steps (compilation) are excluded; median and min are over the timed steps.
Compare with bench/torch_reference.py (PyTorch's step, same flags) run in the same shell right before or after.

usage: python bench/train_step.py [--batch_size 128] [--image_size 32] [--nc 3] [--ngf 64] [--ndf 64]
                                  [--steps 10] [--warmup 2] [--fast_cpu on|off] [--amp_level O0|O1|O2]
                                  [--fused on|off] [--diffaug POLICIES] [--d_contrastive W]
                                  [--device_target CPU] [--threads N]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.cli import command  # noqa: E402
from src.config import parse_train_args, resolve_train_config  # noqa: E402
from src.mixed_precision import check_amp_level  # noqa: E402


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


@command
def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("batch_size", 128), ("image_size", 32), ("nc", 3), ("ngf", 64), ("ndf", 64),
                          ("steps", 10), ("warmup", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--fast_cpu", choices=("on", "off"), default="on")
    p.add_argument("--amp_level", choices=("O0", "O1", "O2"), default="O0",
                   help="O0 fp32; O1/O2 mixed precision as train.py runs it (CPU: bf16 convolutions)")
    p.add_argument("--fused", choices=("on", "off"), default="on",
                   help="on: G's step reuses its forward pass (training's step); off: the step cells' two-pass form")
    p.add_argument("--diffaug", default="", help="DiffAugment policies, as train.py's --diffaug (default none)")
    p.add_argument("--d_contrastive", default="0",
                   help="weight of D's contrastive loss, as train.py's --d_contrastive (default 0: off)")
    p.add_argument("--device_target", default="CPU")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (0: all cores): the project's kernels (DCGAN_CPU_THREADS) and MindSpore's own ops")
    a = p.parse_args()

    if a.threads:
        os.environ["DCGAN_CPU_THREADS"] = str(a.threads)
    cfg = resolve_train_config(parse_train_args([
        "--dataset", "fake", "--device_target", a.device_target, "--batch_size", str(a.batch_size),
        "--image_size", str(a.image_size), "--nc", str(a.nc), "--ngf", str(a.ngf), "--ndf", str(a.ndf),
        "--fast_cpu", a.fast_cpu, "--amp_level", a.amp_level, "--diffaug", a.diffaug,
        "--d_contrastive", a.d_contrastive]))
    check_amp_level(cfg)  # as train.py: no native bf16, no mixed precision on CPU
    from src.cpu import device  # before MindSpore is imported, as train.py does
    note = device.prepare_cpu_environment(a.device_target, a.fast_cpu)
    device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"])
    if a.threads:
        import mindspore as ms
        ms.set_context(runtime_num_threads=a.threads)

    import numpy as np
    import mindspore as ms
    from src.batches import step_noise
    from src.networks import build_training_step

    train_step = build_training_step(cfg, fused=a.fused == "on")[0]
    rng = np.random.default_rng(0)
    real = ms.Tensor(rng.uniform(-1, 1, (a.batch_size, a.nc, a.image_size, a.image_size)).astype(np.float32))

    def run(step):
        outputs = train_step(real, step_noise(cfg, step))
        return float(outputs[0].asnumpy())  # waits for the step to finish

    compile_start = time.perf_counter()
    for i in range(a.warmup):
        run(i)
    warmup_s = time.perf_counter() - compile_start
    times = []
    for i in range(a.steps):
        start = time.perf_counter()
        run(a.warmup + i)
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    from src.cpu.bf16 import cpu_flags, native_bf16_problem
    flags = cpu_flags() or set()
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    cpu = f"{cpu_model()}, {isa}" + (", native bf16" if not native_bf16_problem() else "")
    print(json.dumps({
        "impl": "mindspore", "mindspore": ms.__version__, "device_target": cfg["device_target"], "cpu": cpu,
        "fast_cpu": cfg["fast_cpu"], "amp_level": a.amp_level, "fused": a.fused, "diffaug": cfg["diffaug"] or "off",
        "d_contrastive": cfg["d_contrastive"],
        "env": note, "batch_size": a.batch_size, "image_size": a.image_size, "nc": a.nc,
        "ngf": a.ngf, "ndf": a.ndf, "steps": a.steps, "warmup_s": round(warmup_s, 1),
        "median_ms": round(1000 * median, 1), "min_ms": round(1000 * times[0], 1),
        "images_per_s": round(a.batch_size / median, 1)}))


if __name__ == "__main__":
    sys.exit(main())
