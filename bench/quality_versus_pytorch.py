"""Sample quality side by side: PyTorch's examples/dcgan against this project, same data, nets, batch and steps.

python bench/quality_versus_pytorch.py --data_path MNIST_DIR --torch_python VENV/bin/python
       [--seeds 0 1 2] [--steps 2340] [--ngf 32] [--ndf 32] [--num_images 10000] [--workdir bench_quality]
       [--ours NAME=FLAGS ...] [--no_torch] [--jobs 2]

Trains, for every seed, the PyTorch reference (bench/torch_dcgan_train.py: the examples/dcgan loop, its G at the
end) and this project's train.py once per --ours variant (default: `default=` , the default recipe; e.g.
`--ours paper="--recipe paper"`), all on MNIST's 60,000 training images at 32 px, batch 128, Adam with beta1 0.5
(PyTorch at its 2e-4 for both networks, ours at the variant's learning rates), the
model zoo's nets at --ngf/--ndf (32: G 256/128/64, D 64/128/256) for --steps steps (2,340 = 5 epochs). Each
training runs alone on one core (taskset, one thread), --jobs of them at a time, so their times compare.
Then every generator is scored by this project's judge (src/evaluation: cfid/ckid on the quality classifier's
features, swd) on --num_images samples against MNIST's official 10,000 test images. Ours is what the user gets:
the run directory's generator as eval.py picks it (the best checkpoint by cfid, averaged weights). PyTorch's is
scored in both BatchNorm modes (batch statistics, as the example samples; running statistics) and the better
counts. Prints one JSON line per generator and a table; results are kept in WORKDIR/results.jsonl, and a
finished training is not run again.
PyTorch is a benchmark-only install in its own environment (pip install torch==2.13.0), never a requirement.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from versus_pytorch import cpu_description  # noqa: E402  (a sibling script: this file's folder is on sys.path)


def run_jobs(jobs, parallel):
    """Run (name, argv, log_path, done) jobs, `parallel` at a time, job k on core k % cpus; returns {name: s}."""
    cores = sorted(os.sched_getaffinity(0))
    pending, running, seconds = list(jobs), {}, {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while pending or running:
        free = [c for c in cores[:parallel] if c not in running.values()]
        while pending and free:
            name, argv, log_path, done = pending.pop(0)
            core = free.pop(0)
            print(f"start {name} on core {core}", flush=True)
            process = subprocess.Popen(["taskset", "-c", str(core)] + argv, stdout=open(log_path, "w"),
                                       stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            running[(process, name, time.time(), done)] = core
        time.sleep(2)
        for key in [k for k in running if k[0].poll() is not None]:
            process, name, started, done = key
            del running[key]
            if process.returncode:
                print(f"{name} failed (exit {process.returncode}); see its log", flush=True)
                continue
            seconds[name] = time.time() - started
            done(seconds[name])
            print(f"done {name} in {seconds[name]:.0f} s", flush=True)
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_path", required=True, help="MNIST's idx files (train and t10k)")
    p.add_argument("--torch_python", default=None, help="a Python with torch==2.13.0 (needed unless --no_torch)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2340)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--num_images", type=int, default=10000)
    p.add_argument("--workdir", default="bench_quality")
    p.add_argument("--ours", action="append", default=None, metavar="NAME=FLAGS",
                   help="a variant of this project: a name and train.py flags (repeatable; default: default=)")
    p.add_argument("--no_torch", action="store_true", help="leave the PyTorch reference out")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time, each on its own core")
    a = p.parse_args()
    cpu = cpu_description()  # before start_device() below caps oneDNN's instruction set for the scoring
    variants = dict(v.split("=", 1) for v in (a.ours or ["default="]))
    os.makedirs(a.workdir, exist_ok=True)
    results_file = os.path.join(a.workdir, "results.jsonl")
    times = {}
    if os.path.exists(results_file):
        with open(results_file) as f:
            times = {r["name"]: r for r in map(json.loads, f) if "seconds" in r}

    def record(name, **fields):
        with open(results_file, "a") as f:
            f.write(json.dumps(dict(name=name, **fields)) + "\n")

    jobs = []
    data_file = os.path.join(a.workdir, "mnist32_train.npy")
    if not a.no_torch:
        if not a.torch_python:
            sys.exit("--torch_python is needed for the PyTorch reference (or give --no_torch)")
        if not os.path.exists(data_file):
            import numpy as np
            from src.data.labelled import load_splits
            splits, _ = load_splits("mnist", a.data_path, 32, 1, 0)  # this project's reader and transforms
            np.save(data_file, splits["train"][0])
        for seed in a.seeds:
            name, out = f"pytorch/seed{seed}", os.path.join(a.workdir, f"pytorch_seed{seed}.npz")
            if name not in times or not os.path.exists(out):
                argv = [a.torch_python, "bench/torch_dcgan_train.py", "--images", os.path.abspath(data_file),
                        "--steps", str(a.steps), "--seed", str(seed), "--ngf", str(a.ngf), "--ndf", str(a.ndf),
                        "--threads", "1", "--num_images", str(a.num_images), "--out", os.path.abspath(out)]
                jobs.append((name, argv, out + ".log", lambda s, name=name, out=out: record(name, seconds=s, out=out)))
    for seed in a.seeds:  # seed by seed, so that every variant's first results come early
        for variant, flags in variants.items():
            name, run = f"{variant}/seed{seed}", os.path.abspath(os.path.join(a.workdir, f"{variant}_seed{seed}"))
            if name in times and os.path.isdir(run):
                continue
            argv = [sys.executable, "train.py", "--dataset", "mnist", "--data_path", os.path.abspath(a.data_path),
                    "--ngf", str(a.ngf), "--ndf", str(a.ndf), "--max_steps", str(a.steps), "--seed", str(seed),
                    "--output_path", run] + shlex.split(flags)
            if os.path.isdir(run):
                argv.append("--resume")
            jobs.append((name, argv, run + ".log", lambda s, name=name, run=run: record(name, seconds=s, out=run)))
    run_jobs(jobs, a.jobs)
    if os.path.exists(results_file):
        with open(results_file) as f:
            times = {r["name"]: r for r in map(json.loads, f) if "seconds" in r}

    import numpy as np
    from src.cpu.device import start_device
    start_device("CPU", 0)
    from src.evaluation import QualityJudge
    from src.run import trained
    judge = QualityJudge("mnist", os.path.abspath(a.data_path), 32, 1, num_images=a.num_images, seed=0,
                         log=lambda line: print(line, file=sys.stderr))
    scores = {}
    for name, entry in sorted(times.items()):
        group, seed = name.split("/")
        if group not in variants and not (group == "pytorch" and not a.no_torch):
            continue
        if group == "pytorch":
            samples = np.load(entry["out"])
            by_mode = {mode: judge.score(samples[mode][:a.num_images]) for mode in ("train_mode", "eval_mode")}
            mode = min(by_mode, key=lambda m: by_mode[m]["cfid"])
            score = dict(by_mode[mode], bn=mode, other_cfid=by_mode[[m for m in by_mode if m != mode][0]]["cfid"])
        else:
            netG, arch, ckpt = trained.load(entry["out"], "G", warn=lambda line: print(line, file=sys.stderr))
            import mindspore as ms
            score = judge.evaluate(lambda z: netG(ms.Tensor(z)).asnumpy(), arch["nz"])
            score["checkpoint"] = os.path.relpath(ckpt, entry["out"])
        score.update(name=name, seconds=round(entry["seconds"], 1))
        scores[name] = score
        print(json.dumps(score), flush=True)

    groups = (["pytorch"] if not a.no_torch else []) + list(variants)
    print(f"\nMNIST 32 px, ngf {a.ngf} / ndf {a.ndf}, batch 128, {a.steps} steps; cfid on {a.num_images} samples "
          f"against the 10,000 test images; one core per training; {cpu['cpu']} ({cpu['cores']} cores, {cpu['isa']})")
    print("| run | " + " | ".join(f"seed {s}" for s in a.seeds) + " | mean | worst | time per run (median) |")
    print("|---|" + "---|" * (len(a.seeds) + 3))
    for group in groups:
        values = [scores.get(f"{group}/seed{s}", {}).get("cfid") for s in a.seeds]
        found = [v for v in values if v is not None]
        seconds = [scores[f"{group}/seed{s}"]["seconds"] for s in a.seeds if f"{group}/seed{s}" in scores]
        cells = [f"{v:.2f}" if v is not None else "–" for v in values]
        mean = f"{statistics.mean(found):.2f}" if found else "–"
        worst = f"{max(found):.2f}" if found else "–"
        time_cell = f"{statistics.median(seconds) / 60:.1f} min" if seconds else "–"
        print(f"| {group} | " + " | ".join(cells) + f" | {mean} | {worst} | {time_cell} |")


if __name__ == "__main__":
    main()
