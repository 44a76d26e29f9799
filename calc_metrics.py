"""Sample-quality metrics of a trained generator, computed offline (nothing is downloaded).

python calc_metrics.py --ckpt_file CKPT_OR_RUN_DIR --dataset NAME [--data_path PATH] [--metrics swd,cfid,ckid]
                       [--num_images N] [--seed S] [--feature_model model.mindir|model.onnx]
                       [--device_target CPU|GPU|Ascend]
prints one JSON line: one key per metric (lower is better), what was compared (generator checkpoint, "reference":
the real images) and how many images, and appends it to RUN_DIR/quality.jsonl ("source": "calc_metrics"; RUN_DIR is
the checkpoint's run directory, or the run directory given). Progress lines (classifier training, its accuracy) go
to stderr. Metrics: swd (every dataset), cfid/ckid (labelled datasets: digits, mnist, cifar10, class folders),
fid/kid (with --feature_model). See src/evaluation/judge.py.
"""
import json
import os
import sys
import time

from src.cli import ArgumentParser, check_memory, check_seed, command
from src.config import DATASET_NAMES, DEVICE_TARGETS, measurement_bytes
from src.errors import UserError
from src.run.directory import append_jsonl, checkpoint_step, config_or_empty


def parse_args(argv=None):
    from src.evaluation import METRICS
    from src.run.trained import add_arch_arguments, add_which_argument
    p = ArgumentParser(description="Sample-quality metrics (SWD, classifier FID/KID, FID/KID) of a DCGAN generator.")
    p.add_argument("--ckpt_file", required=True, help="a generator_N.ckpt or a run directory (see --which)")
    p.add_argument("--dataset", default=None,
                   help="the real images: one of " + ", ".join(DATASET_NAMES) + " (default: the run's config.json)")
    p.add_argument("--data_path", default=None, help="dataset location (default: the run's, when --dataset is too)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, from {','.join(METRICS)} (default: swd, plus cfid,ckid on labelled data, "
                        "plus fid,kid with --feature_model)")
    p.add_argument("--num_images", type=int, default=1000, help="generated images (default 1000)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the latent sample, the real-image sample and the metrics' random choices")
    p.add_argument("--feature_model", default=None,
                   help="a .mindir or .onnx network mapping images (fed in [-1, 1]) to features, for fid/kid")
    p.add_argument("--device_target", choices=DEVICE_TARGETS, default="CPU")
    p.add_argument("--device_id", type=int, default=0)
    add_which_argument(p)
    add_arch_arguments(p, ("G",))
    args = p.parse_args(argv)
    if args.num_images < 2:
        raise UserError(f"--num_images must be at least 2, not {args.num_images}")
    check_seed(args.seed)
    if args.metrics is not None:
        from src.evaluation import parse_metrics
        args.metrics = parse_metrics(args.metrics)
    if args.feature_model and not os.path.isfile(args.feature_model):
        raise UserError(f"feature model not found: {args.feature_model}")
    return args


def run_directory(path, ckpt_file):
    """The run directory whose quality.jsonl gets the line: `path` itself when it is a directory."""
    from src.run import trained
    return os.path.abspath(path) if os.path.isdir(path) else trained.run_dir_of(ckpt_file)


def dataset_of(args, run_dir):
    """(dataset, data_path): the command line's, else the run's config.json."""
    if args.dataset:
        return args.dataset, args.data_path
    cfg = config_or_empty(run_dir)  # missing or damaged: the command line must say it
    saved_path = cfg.get("data_path")
    if not isinstance(cfg.get("dataset"), str) or not isinstance(saved_path, (str, type(None))):
        raise UserError("--dataset is required (no run directory with a readable config.json to take it from)")
    return cfg["dataset"], args.data_path or saved_path


@command
def main(argv=None):
    started = time.time()
    args = parse_args(argv)
    from src.cpu.device import start_device
    start_device(args.device_target, args.device_id)  # before MindSpore is imported (see src/cpu/device.py)
    import mindspore as ms

    from src.run import trained
    from src.evaluation import QualityJudge
    from src.run.directory import QUALITY_FILE

    netG, arch, ckpt_file = trained.load(args.ckpt_file, "G", trained.overrides_from(args, "G"), args.which)
    check_memory(measurement_bytes(args.num_images, arch["image_size"]), f"--num_images {args.num_images}")
    run_dir = run_directory(args.ckpt_file, ckpt_file)
    if run_dir and os.path.isdir(os.path.join(run_dir, QUALITY_FILE)):  # refused before the measurement, not after
        raise UserError(f"cannot append to {os.path.join(run_dir, QUALITY_FILE)}: it is a directory")
    dataset, data_path = dataset_of(args, run_dir)
    judge = QualityJudge(dataset, data_path, arch["image_size"], arch["nc"], metrics=args.metrics,
                         num_images=args.num_images, seed=args.seed, cache_dir=run_dir,
                         feature_model=args.feature_model, log=lambda line: print(line, file=sys.stderr))
    result = judge.evaluate(lambda z: netG(ms.Tensor(z)).asnumpy(), arch["nz"])
    kind_and_step = checkpoint_step(ckpt_file)  # None for a generator file renamed by the user
    record = {"source": "calc_metrics", "step": kind_and_step and kind_and_step[1], "primary": judge.primary}
    record.update({k: v for k, v in result.items() if k not in ("num_images", "reference")})
    record.update(generator=os.path.abspath(ckpt_file), num_images=result["num_images"],
                  reference=result["reference"], dataset=judge.dataset, seed=args.seed,
                  seconds=round(time.time() - started, 1))
    if args.feature_model:
        record["feature_model"] = os.path.abspath(args.feature_model)
    line = json.dumps(record)
    print(line)
    if run_dir:
        try:
            append_jsonl(os.path.join(run_dir, QUALITY_FILE), record)
        except OSError as error:
            raise UserError(f"cannot append to {os.path.join(run_dir, QUALITY_FILE)}: {error.strerror}") from None
    else:
        print(f"{ckpt_file} is not in a run directory: quality.jsonl not written", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
