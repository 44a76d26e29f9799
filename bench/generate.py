#!/usr/bin/env python3
"""Time G inference (what eval.py runs: BN in inference mode) and print one JSON line with images/s.

G is built by src.trainer.build_networks from the config train.py would resolve (model-zoo widths; on CPU the fast
layers unless --fast_cpu off). Warm-up (compilation) is excluded; median and min are over the timed batches.

usage: python bench/generate.py [--batch_size 500] [--image_size 32] [--nc 3] [--ngf 64] [--steps 7] [--fast_cpu on|off]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from src.config import parse_train_args, resolve_train_config  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("batch_size", 500), ("image_size", 32), ("nc", 3), ("ngf", 64), ("steps", 7),
                          ("warmup", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--fast_cpu", choices=("on", "off"), default="on")
    p.add_argument("--device_target", default="CPU")
    a = p.parse_args()

    from src.cpu import device  # before MindSpore is imported, as train.py and eval.py do
    note = device.prepare_cpu_environment(a.device_target, a.fast_cpu)
    cfg = resolve_train_config(parse_train_args([
        "--dataset", "fake", "--device_target", a.device_target, "--image_size", str(a.image_size),
        "--nc", str(a.nc), "--ngf", str(a.ngf), "--fast_cpu", a.fast_cpu]))
    device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"])

    import numpy as np
    import mindspore as ms
    from src.networks import build_networks

    netG = build_networks(cfg)[0]
    netG.set_train(False)
    rng = np.random.default_rng(0)
    z = ms.Tensor(rng.standard_normal((a.batch_size, cfg["nz"], 1, 1)).astype(np.float32))
    for _ in range(a.warmup):
        netG(z).asnumpy()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        netG(z).asnumpy()
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "impl": "mindspore", "what": "generator inference", "mindspore": ms.__version__,
        "device_target": cfg["device_target"], "fast_cpu": cfg["fast_cpu"], "env": note, "batch_size": a.batch_size,
        "image_size": a.image_size, "nc": a.nc, "ngf": a.ngf, "steps": a.steps,
        "median_ms": round(1000 * median, 1), "min_ms": round(1000 * times[0], 1),
        "images_per_s": round(a.batch_size / median, 1)}))


if __name__ == "__main__":
    main()
