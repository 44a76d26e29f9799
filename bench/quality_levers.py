"""Sample quality of G and of its moving average at every saved training state of one or more runs.

python bench/quality_levers.py RUN_DIR [RUN_DIR ...] [--num_images N] [--last] [--bn_batches K]

For each train_state_N.ckpt (keep them with --keep_checkpoint_max) it rebuilds G itself and, when the run averaged
it (--ema_decay), the averaged G, and scores both with the project's sample-quality judge (src/evaluation) on the
same fixed latent sample. The average never feeds back into training, so one run gives both sides of the EMA
comparison. Prints one JSON line per (run, step) and a summary line per run: the final and the best value of the
dataset's primary metric for each generator.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reestimate_batchnorm(netG, cfg, batches):
    """Replace G's BatchNorm running statistics by the population statistics of its own weights: the layers are
    run one by one on `batches` x batch_size noise vectors, and each BatchNorm takes the mean and variance of its
    input before the next layer runs (in inference mode, with the new statistics)."""
    import mindspore as ms
    import mindspore.nn as nn
    import numpy as np

    rng = np.random.default_rng(12345)
    x = ms.Tensor(rng.standard_normal((batches * cfg["batch_size"], cfg["nz"], 1, 1)).astype(np.float32))
    netG.set_train(False)
    axes = (0, 1, 2) if netG.channels_last else (0, 2, 3)  # all but the channel axis (src/generator.py)
    for layer in netG.main:
        if isinstance(layer, nn.BatchNorm2d):
            a = x.asnumpy().astype(np.float64)
            layer.moving_mean.set_data(ms.Tensor(a.mean(axis=axes).astype(np.float32)))
            layer.moving_variance.set_data(ms.Tensor(a.var(axis=axes).astype(np.float32)))
        x = layer(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--num_images", type=int, default=1000)
    p.add_argument("--last", action="store_true", help="score only each run's last saved training state")
    p.add_argument("--bn_batches", type=int, default=0,
                   help="also score the averaged G with BatchNorm statistics re-estimated on this many batches")
    args = p.parse_args()

    from src.cpu.device import start_device
    start_device("CPU", 0)

    from src.run import checkpoint, directory as run_dir
    from src.evaluation import QualityJudge
    from src.evaluation.tracker import QUALITY_SEED
    from src.networks import build_generator, sample

    judges = {}
    for run in args.runs:
        cfg = run_dir.read_config(run)
        key = (cfg["dataset"], cfg["data_path"], cfg["image_size"], cfg["nc"])
        if key not in judges:
            judges[key] = QualityJudge(*key, num_images=args.num_images, seed=QUALITY_SEED, cache_dir=run)
        judge = judges[key]
        cfg = dict(cfg, device_target="CPU")
        curves = {}
        steps = checkpoint.saved_steps(run)
        for step in steps[-1:] if args.last else steps:
            state = checkpoint.read_checkpoint(checkpoint.ckpt_path(run, "train_state", step))
            line = {"run": run, "step": step, "ema_decay": cfg.get("ema_decay", 0.0)}
            for group in ("G", "EMA"):
                names = {k[len(group) + 1:]: v for k, v in state.items() if k.startswith(group + "/")}
                if not names:
                    continue
                netG = build_generator(cfg)
                checkpoint.assign(checkpoint.network_entries(netG), names, f"{run} step {step} {group}")
                netG.set_train(False)
                scores = judge.evaluate(lambda z: sample(netG, z), cfg["nz"])
                line[group] = {k: v for k, v in scores.items() if isinstance(v, float)}
                curves.setdefault(group, []).append((step, scores[judge.primary]))
                if group == "EMA" and args.bn_batches:
                    reestimate_batchnorm(netG, cfg, args.bn_batches)
                    scores = judge.evaluate(lambda z: sample(netG, z), cfg["nz"])
                    line["EMA_bn"] = {k: v for k, v in scores.items() if isinstance(v, float)}
                    curves.setdefault("EMA_bn", []).append((step, scores[judge.primary]))
            print(json.dumps(line), flush=True)
        summary = {"run": run, "seed": cfg["seed"], "ema_decay": cfg.get("ema_decay", 0.0), "primary": judge.primary}
        for group, points in curves.items():
            summary[group] = {"final": points[-1][1], "best": min(v for _, v in points),
                              "best_step": min(points, key=lambda p: p[1])[0]}
        print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
