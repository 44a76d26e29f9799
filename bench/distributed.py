#!/usr/bin/env python3
"""Data-parallel throughput on this machine: 1 worker with 2 threads vs 2 msrun workers with 1 thread each.

Each worker times the project's real training step (src.trainer.build_training_step, with the same data-parallel
setup train.py --run_distribute makes) and, separately, one all-reduce of as many floats as G and D have trainable
parameters (what the step all-reduces). Prints one JSON line: images/s (global) for both layouts, the step medians,
and the all-reduce time per step.

usage: python bench/distributed.py [--batch_size 128] [--image_size 32] [--nc 3] [--steps 6] [--warmup 2]
(`--role` is internal: the mode each msrun worker runs in.)
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def options():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("batch_size", 128), ("image_size", 32), ("nc", 3), ("steps", 6), ("warmup", 2),
                          ("threads", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--role", choices=("single", "distributed"), default=None)
    p.add_argument("--result", default=None)
    return p.parse_args()


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def worker(a):
    from src.cpu import device
    device.prepare_cpu_environment("CPU", "on")  # the fast layers, as train.py uses them
    import numpy as np
    import mindspore as ms
    import mindspore.ops as ops
    from src.config import parse_train_args, resolve_train_config
    from src.run.distributed import init_world

    distributed = a.role == "distributed"
    cfg = resolve_train_config(parse_train_args(["--dataset", "fake", "--batch_size", str(a.batch_size),
                                                 "--image_size", str(a.image_size), "--nc", str(a.nc)]))
    device.set_device("CPU", 0, "graph", distributed)
    ms.set_context(runtime_num_threads=a.threads)
    world = init_world(distributed)
    from src.batches import step_noise
    from src.networks import build_training_step

    train_step, netG, netD = build_training_step(cfg)[:3]
    rng = np.random.default_rng(world.rank)
    real = ms.Tensor(rng.uniform(-1, 1, (a.batch_size, a.nc, a.image_size, a.image_size)).astype(np.float32))
    times = []
    for i in range(a.warmup + a.steps):
        start = time.perf_counter()
        float(train_step(real, step_noise(cfg, i, world.rank))[0].asnumpy())
        times.append(time.perf_counter() - start)
    result = {"step_ms": round(1000 * median(times[a.warmup:]), 1)}
    if distributed:
        size = sum(int(np.prod(p.shape)) for p in netG.trainable_params() + netD.trainable_params())
        grads = ms.Tensor(np.ones(size, np.float32))
        all_reduce = ops.AllReduce()
        reduce_times = []
        for _ in range(a.warmup + a.steps):
            start = time.perf_counter()
            all_reduce(grads).asnumpy()
            reduce_times.append(time.perf_counter() - start)
        result["allreduce_ms"] = round(1000 * median(reduce_times[a.warmup:]), 1)
        result["allreduce_floats"] = size
    if world.rank == 0 and a.result:
        with open(a.result, "w") as f:
            json.dump(result, f)


def run_layout(a, workers, threads):
    """Run one layout in subprocesses and return rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        common = [__file__, "--batch_size", str(a.batch_size), "--image_size", str(a.image_size), "--nc",
                  str(a.nc), "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(threads),
                  "--result", result]
        if workers == 1:
            command = [sys.executable] + common + ["--role", "single"]
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            msrun = os.path.join(os.path.dirname(sys.executable), "msrun")
            command = [msrun, f"--worker_num={workers}", f"--local_worker_num={workers}", "--master_addr=127.0.0.1",
                       f"--master_port={port}", f"--log_dir={tmp}/logs", "--join=True"] + common + \
                      ["--role", "distributed"]
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                   DCGAN_CPU_THREADS=str(threads))  # the custom kernels' threads, as the msrun launcher sets them
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        with open(result) as f:
            return json.load(f)


def main():
    a = options()
    if a.role:
        return worker(a)
    single = run_layout(a, 1, 2)
    double = run_layout(a, 2, 1)
    print(json.dumps({
        "bench": "distributed", "batch_size_per_worker": a.batch_size, "image_size": a.image_size, "nc": a.nc,
        "cores": os.cpu_count(),
        "one_worker_2_threads": {"step_ms": single["step_ms"],
                                 "images_per_s": round(a.batch_size / single["step_ms"] * 1000, 1)},
        "two_workers_1_thread": {"step_ms": double["step_ms"],
                                 "images_per_s": round(2 * a.batch_size / double["step_ms"] * 1000, 1),
                                 "allreduce_ms_per_step": double["allreduce_ms"],
                                 "allreduce_floats": double["allreduce_floats"]},
    }))


if __name__ == "__main__":
    main()
