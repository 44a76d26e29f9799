#!/usr/bin/env python3
"""Start-up time of training: from the command to the end of the first training step, split into its parts.

Runs train.py's own start-up sequence in a child process (the same calls in the same order: parse and resolve the
config, choose the CPU environment, which builds or loads the project's CPU kernels, select the device, import
the trainer, build the Trainer (data, networks, optimizers, run directory), then its loop) and times each part:

  interpreter     from the command to the first line of the script (Python start-up)
  imports         the project's and MindSpore's Python imports (src.config; mindspore; src.trainer and its imports)
  kernel build    src/cpu/device.py choosing the CPU environment: compiles the project's oneDNN kernels with g++ on
                  the first run, later only checks the cache and loads the shared object
  device          ms.set_device / set_context
  trainer         Trainer(cfg): the dataset, G and D (with their Custom kernels), Adam, the run directory
  first batch     from the loop's start to the first step: the data pipeline's first batch, the real-image grid
  compile         the first call of the training step minus the second (graph compilation)
  step            the second call of the training step

Each run is made twice: "cold", with an empty kernel cache (HOME pointed at a fresh directory, as on a new
machine or after an upgrade), and "warm" (the cache from the cold run), `--repeats` times each, alternated.
Prints one JSON line per run, then the medians, with the CPU and the load average.

usage: python bench/startup.py [--repeats 2] [-- train.py options]   (default: the digits demo's config)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

T_SPAWN = "DCGAN_STARTUP_T0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(argv):
    marks = {"start": time.time()}
    sys.path.insert(0, ROOT)
    from src.config import parse_train_args, resolve_train_config
    marks["imports_config"] = time.time()
    args = parse_train_args(argv)
    cfg = resolve_train_config(args)
    from src.cpu import device
    note = device.prepare_cpu_environment(cfg["device_target"], cfg.get("fast_cpu") or "on")
    marks["kernel_build"] = time.time()
    import mindspore  # noqa: F401  (imported by set_device; timed on its own)
    marks["import_mindspore"] = time.time()
    device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"], cfg["run_distribute"])
    marks["device"] = time.time()
    from src.trainer import Trainer
    from src.run.distributed import World
    marks["import_trainer"] = time.time()
    trainer = Trainer(cfg, World(), notes=[note])
    marks["trainer"] = time.time()
    step = trainer.train_step
    ends = []

    def timed(*inputs):
        start = time.time()
        outputs = step(*inputs)
        outputs[0].asnumpy()  # the step has finished
        ends.append((start, time.time()))
        return outputs

    trainer.train_step = timed
    before_loop = time.time()
    trainer.run()
    t0 = float(os.environ[T_SPAWN])
    parts = {
        "interpreter_s": marks["start"] - t0,
        "imports_s": (marks["imports_config"] - marks["start"]) + (marks["import_mindspore"] - marks["kernel_build"])
        + (marks["import_trainer"] - marks["device"]),
        "kernel_build_s": marks["kernel_build"] - marks["imports_config"],
        "device_s": marks["device"] - marks["import_mindspore"],
        "trainer_s": marks["trainer"] - marks["import_trainer"],
        "first_batch_s": ends[0][0] - before_loop,
        "first_step_s": ends[0][1] - ends[0][0],
        "step_s": ends[1][1] - ends[1][0],
    }
    parts["compile_s"] = parts["first_step_s"] - parts["step_s"]
    parts["to_first_step_s"] = ends[0][1] - t0
    print(json.dumps({"note": note, **{k: round(v, 2) for k, v in parts.items()}}), flush=True)


def run_once(extra, home):
    out = tempfile.mkdtemp(prefix="dcgan_startup_run_")
    env = dict(os.environ, HOME=home)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--output_path", out, "--max_steps", "2", *extra]
    env[T_SPAWN] = repr(time.time())
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    shutil.rmtree(out, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"start-up run failed: {' '.join(cmd)}\n{done.stderr.strip()[-3000:]}")
    return json.loads(lines[-1])


def main():
    if "--child" in sys.argv:
        argv = [a for a in sys.argv[1:] if a != "--child"]
        return child(argv)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    head = argv[:argv.index("--")] if "--" in argv else argv
    repeats = int(head[head.index("--repeats") + 1]) if "--repeats" in head else 2
    if "--dataset" not in extra:
        extra = ["--dataset", "digits", *extra]
    if "--metrics_interval" not in extra:  # the run stops after 2 steps: no quality measurement at its end
        extra = [*extra, "--metrics_interval", "0"]
    sys.path.insert(0, HERE_BENCH)
    from versus_pytorch import cpu_description, load_average
    machine = cpu_description()
    print(json.dumps({**machine, "load": load_average()}), flush=True)
    results = {"cold": [], "warm": []}
    for _ in range(repeats):
        home = tempfile.mkdtemp(prefix="dcgan_startup_home_")
        try:
            for kind in ("cold", "warm"):
                r = run_once(extra, home)
                r["kind"] = kind
                results[kind].append(r)
                print(json.dumps(r), flush=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    keys = ["interpreter_s", "imports_s", "kernel_build_s", "device_s", "trainer_s", "first_batch_s", "compile_s",
            "step_s",
            "to_first_step_s"]
    print(f"\nstart-up, {machine['cpu']} ({machine['isa']}, {machine['cores']} cores), load average now "
          f"{load_average()}; medians of {repeats} runs each (seconds), train.py {' '.join(extra)}:")
    print(f"{'':<6}" + "".join(f"{k[:-2]:>14}" for k in keys))
    for kind, runs in results.items():
        print(f"{kind:<6}" + "".join(f"{statistics.median(r[k] for r in runs):>14.2f}" for k in keys))


HERE_BENCH = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    main()
