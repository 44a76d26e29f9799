#!/usr/bin/env python3
"""The whole training loop against the bare step: train.py's images/s over a run, and where the difference goes.

Runs train.py's own sequence in this process (config, CPU environment, device, Trainer, Trainer.run) on a
temporary run directory, with timers around the loop's parts (none of which adds a synchronisation):

  data        each epoch's new pipeline and its iterator (the images, and the latent batches drawn in the
              pipeline's thread)
  log         the log lines (the loss records' file writes are not timed: they mark the window)
  ema         the moving average of G's weights                     samples   the fixed-noise grids
  checkpoint  saving and rotating checkpoints                        report    index.html at epoch ends
  quality     the sample-quality measurements (a feature of the run, not of the loop: shown apart)
  steps       the loop's own step calls, set against as many steps at the bare step's mean

The loop's rate is measured between the first and the last log record (the records sit on steps where the loop
already waits for the step's losses), so compilation is out and everything else the loop does is in. The bare
step is the same compiled step called back to back on one batch (each call waited for): 15 times before the run,
8 times at the end of every epoch (where the report may be refreshed; that time is taken out of the loop's window,
and those steps train on the fixed batch, so the run's losses are not the demo's) and 15 times after, so that a
machine whose speed drifts (other processes) moves both figures alike. The reference is the bare step's rate over
all those calls (images / seconds, the statistic the loop's images/s is): on a VM a few steps in a hundred run
~1.5x slow, in the bare calls as in the loop's, so the bare step's median (printed too) would hold the loop to a
speed that neither reaches over a run. The parts are host time spent in each call; on CPU a step's call returns
when the step is done, so they add up with the steps. Prints one JSON line and a short table, with the CPU and
load average.

usage: python bench/loop_vs_step.py [train.py options]   (default: --dataset digits, i.e. the whole demo run:
                                                          1,260 steps, six quality measurements; ~2 min)
"""
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
BARE_PER_EPOCH = 8
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def main():
    argv = sys.argv[1:]
    if "--dataset" not in argv:
        argv = ["--dataset", "digits", *argv]
    out = tempfile.mkdtemp(prefix="dcgan_loop_")
    argv = [*argv, "--output_path", out]

    from versus_pytorch import cpu_description, load_average
    from src.config import parse_train_args, resolve_train_config
    cfg = resolve_train_config(parse_train_args(argv))
    from src.cpu import device
    note = device.prepare_cpu_environment(cfg["device_target"], cfg.get("fast_cpu") or "on")
    device.set_device(cfg["device_target"], cfg["device_id"], cfg["mode"], cfg["run_distribute"])
    import numpy as np
    import mindspore as ms
    import src.trainer as trainer_module
    from src.batches import step_noise
    from src.bookkeeping import Bookkeeping
    from src.run.distributed import World

    machine = cpu_description()
    load_before = load_average()
    trainer = trainer_module.Trainer(cfg, World(), notes=[note])
    spent = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    # The bare step, before the run (its first call compiles the graph).
    cfg = trainer.cfg  # with what the data told it (nc)
    batch_size = cfg["batch_size"]
    rng = np.random.default_rng(0)
    real = ms.Tensor(rng.uniform(-1, 1, (batch_size, cfg["nc"], cfg["image_size"], cfg["image_size"]))
                     .astype(np.float32))

    step_cell = trainer.train_step

    def bare(n):
        times = []
        for i in range(n):
            noise = step_noise(cfg, 10 ** 6 + i)
            start = time.perf_counter()
            step_cell(real, noise)[0].asnumpy()
            times.append(time.perf_counter() - start)
        return times

    bare(2)
    bare_ms = bare(15)

    # The loop's periodic work (src/bookkeeping.py), timed by kind.
    for name, kind in (("save_samples", "samples"), ("render_report", "report"), ("measure_quality", "quality"),
                       ("save_checkpoint", "checkpoint"), ("rotate_checkpoints", "checkpoint")):
        setattr(Bookkeeping, name, timed(kind, getattr(Bookkeeping, name)))
    render_report = Bookkeeping.render_report

    def report_then_bare_steps(keeping, force=False):
        """At each epoch's end (where the loop offers to refresh the report): a block of bare steps, timed apart
        from the loop."""
        result = render_report(keeping, force)
        if not force:
            start = time.perf_counter()
            bare_ms.extend(bare(BARE_PER_EPOCH))
            spent["bare"] += time.perf_counter() - start
        return result

    Bookkeeping.render_report = report_then_bare_steps
    loop_ms = []

    def loop_step(*args):  # the loop's own step calls (each returns when its step is done)
        start = time.perf_counter()
        try:
            return step_cell(*args)
        finally:
            loop_ms.append(1000 * (time.perf_counter() - start))

    trainer.train_step = loop_step
    if trainer.ema is not None:
        ema_update = trainer.ema.update
        trainer.ema.update = timed("ema", ema_update)
    trainer_module.epoch_dataset = timed("data", trainer_module.epoch_dataset)  # a new pipeline each epoch
    iterate = trainer.bad_files.iterate

    def timed_iterate(*args, **kwargs):
        items = iterate(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                spent["data"] += time.perf_counter() - start
            yield item

    trainer.bad_files.iterate = timed_iterate
    records = []  # (time, step, time spent in quality so far)
    write = trainer.metrics.write

    def timed_write(record):
        records.append((time.perf_counter(), record["step"], dict(spent)))
        return write(record)

    trainer.metrics.write = timed_write
    trainer.log.info = timed("log", trainer.log.info)
    started = time.perf_counter()
    trainer.run()
    run_s = time.perf_counter() - started
    bare_ms = [1000 * t for t in bare_ms + bare(15)]
    shutil.rmtree(out, ignore_errors=True)

    (t0, step0, spent0), (t1, step1, spent1) = records[0], records[-1]
    parts = {k: spent1.get(k, 0.0) - spent0.get(k, 0.0) for k in set(spent1) | set(spent0)}
    window_s = t1 - t0 - parts.pop("bare", 0.0)  # the bare blocks inside the window are not the loop's
    quality_s = parts.pop("quality", 0.0)
    window_ms = loop_ms[step0:step1]  # the steps that ended inside the window (a fresh run's steps 1.. are 0..)
    loop_steps_s = sum(window_ms) / 1000
    images = (step1 - step0) * batch_size
    bare_median, bare_mean = statistics.median(bare_ms), statistics.fmean(bare_ms)
    bare_ips = 1000 * batch_size / bare_mean
    loop_ips = images / window_s
    loop_ips_no_quality = images / (window_s - quality_s)
    steps_s = (step1 - step0) * bare_mean / 1000
    summary = {
        **machine, "load_before": load_before, "load_after": load_average(), "config": " ".join(argv[:-2]),
        "batch_size": batch_size, "steps_in_window": step1 - step0, "window_s": round(window_s, 2),
        "bare_step_ms": round(bare_median, 1), "bare_images_per_s": round(bare_ips, 1),
        "loop_images_per_s": round(loop_ips, 1), "loop_images_per_s_without_quality": round(loop_ips_no_quality, 1),
        "loop_over_bare": round(loop_ips / bare_ips, 3),
        "loop_over_bare_without_quality": round(loop_ips_no_quality / bare_ips, 3),
        "parts_s": {k: round(v, 2) for k, v in sorted(parts.items())}, "quality_s": round(quality_s, 2),
        "bare_steps_s": round(steps_s, 2), "loop_steps_s": round(loop_steps_s, 2), "run_s": round(run_s, 2),
        "over_bare_median_without_quality": round(loop_ips_no_quality * bare_median / (1000 * batch_size), 3),
        "step_ms": {"bare_median": round(bare_median, 2), "bare_mean": round(bare_mean, 2),
                    "loop_median": round(statistics.median(window_ms), 2),
                    "loop_mean": round(statistics.fmean(window_ms), 2)}}
    print(json.dumps(summary), flush=True)
    print(f"\n{machine['cpu']} ({machine['isa']}, {machine['cores']} cores), load average {load_before} -> "
          f"{summary['load_after']}; {' '.join(argv[:-2])}, batch {batch_size}")
    print(f"bare step: {bare_mean:.1f} ms (mean of {len(bare_ms)} calls; median {bare_median:.1f} ms), "
          f"{bare_ips:.0f} images/s")
    print(f"loop, steps {step0}..{step1}: {loop_ips:.0f} images/s = {100 * loop_ips / bare_ips:.1f}% of the bare "
          f"step's; without the quality measurements ({quality_s:.1f} s): {loop_ips_no_quality:.0f} images/s = "
          f"{100 * loop_ips_no_quality / bare_ips:.1f}% ({100 * summary['over_bare_median_without_quality']:.1f}% "
          f"of the bare step's median rate)")
    other = window_s - quality_s - loop_steps_s - sum(parts.values())
    print("where the loop's time went (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items()))
          + f", the rest {other:.2f}; the loop's step calls {loop_steps_s:.2f} against {steps_s:.2f} at the bare rate")
    step_ms = summary["step_ms"]
    print(f"step calls (ms): the loop's median {step_ms['loop_median']}, mean {step_ms['loop_mean']}; "
          f"the bare step's median {step_ms['bare_median']}, mean {step_ms['bare_mean']}")


if __name__ == "__main__":
    main()
