"""The paper's representation-learning test: classify images with a linear SVM on the trained D's features.

python verify.py --ckpt_file CKPT_OR_RUN_DIR --dataset cifar10|mnist|folder|digits --data_path PATH
                 [--num_labels N] [--classifier linear|svc] [--output_path DIR]
prints one JSON line: "accuracy" (trained D features) and "baselines" (the same D untrained, raw pixels) on the
same split, with the chosen C, feature sizes and Fréchet distances; the same line is written to DIR/verify.json
(default DIR: the checkpoint's run directory). See src/evaluation/representation.py for the protocol.

python verify.py --ckpt_file CKPT_OR_RUN_DIR --visualize [--channels 0,1,2,3,4,5] [--top 4] [--dataset ...]
writes DIR/guided_backprop.png instead: for each channel of D's last stage, the real test images that excite it
most and their guided-backpropagation maps, next to the same for an untrained D (src/analysis/guided_backprop.py).
"""
import json
import os
import sys

from src.cli import ArgumentParser, check_seed, command
from src.config import DEVICE_TARGETS
from src.errors import UserError
from src.outputs.generate import check_output_folder

DATASETS = ("cifar10", "mnist", "folder", "digits")
CLASSIFIERS = ("linear", "svc")


def parse_args(argv=None):
    from src.run.trained import add_arch_arguments
    p = ArgumentParser(description="Linear-SVM accuracy of a trained DCGAN discriminator's features.")
    p.add_argument("--ckpt_file", required=True, help="a discriminator_N.ckpt or a run directory (its newest D)")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data_path", default=None, help="dataset location (not needed for digits)")
    p.add_argument("--num_labels", type=int, default=None,
                   help="use N labelled training examples in all, the same number per class (default: all)")
    p.add_argument("--classifier", choices=CLASSIFIERS, default="linear",
                   help="linear: L2-SVM (LinearSVC, the paper); svc: RBF SVC (the model zoo)")
    p.add_argument("--output_path", default=None, help="directory for verify.json (default: the run directory)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the label subset, the untrained D and the split of class folders "
                        "(digits: the fixed hold-out that training keeps out)")
    p.add_argument("--batch_size", type=int, default=128, help="images per forward pass")
    p.add_argument("--jobs", type=int, default=None,
                   help="SVMs fitted at once, in worker processes (default: one per CPU); 1: all in this process")
    p.add_argument("--device_target", choices=DEVICE_TARGETS, default="CPU")
    p.add_argument("--device_id", type=int, default=0)
    p.add_argument("--visualize", action="store_true",
                   help="instead of the SVM test, write guided_backprop.png: what D's last-stage channels respond "
                        "to (guided backpropagation), trained D against untrained D")
    p.add_argument("--channels", default="0,1,2,3,4,5",
                   help="--visualize: the last-stage channels shown (comma-separated; default: the first 6)")
    p.add_argument("--top", type=int, default=4, help="--visualize: top-activating images shown per channel")
    add_arch_arguments(p, ("D",))
    args = p.parse_args(argv)
    if args.visualize:
        from src.analysis.commands import parse_channels
        args.channels = parse_channels(args.channels)
        if args.top < 1:
            raise UserError(f"--top must be at least 1, not {args.top}")
    if args.dataset != "digits" and not args.data_path:
        raise UserError(f"dataset '{args.dataset}' needs --data_path")
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, not {args.batch_size}")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {args.jobs}")
    if args.num_labels is not None and args.num_labels < 1:
        raise UserError(f"--num_labels must be positive, not {args.num_labels}")
    check_seed(args.seed)
    if args.output_path is not None:
        check_output_folder(args.output_path, ["guided_backprop.png" if args.visualize else "verify.json"])
    return args


def class_count(dataset, data_path):
    """The number of classes verify.py will see, read cheaply (folder: its class sub-folders)."""
    if dataset != "folder":
        return 10
    from src.data.readers import image_subdirs
    return len(image_subdirs(data_path)) if os.path.isdir(data_path) else 0


def minimum_labels(classes, fraction):
    """The fewest --num_labels whose balanced subset the protocol's stratified validation split (`fraction` held
    out, at least one example of each class on both sides) can take."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    count = 2 * classes
    while True:
        try:
            train_test_split(np.arange(count), test_size=fraction, stratify=np.arange(count) % classes,
                             random_state=0)
            return count
        except ValueError:
            count += 1


def check_num_labels(args):
    from src.evaluation.representation import VALIDATION_FRACTION

    if args.num_labels is None:
        return
    classes = class_count(args.dataset, args.data_path)
    if classes < 2:
        return  # the dataset reader says what is wrong with the folder
    least = minimum_labels(classes, VALIDATION_FRACTION)
    if args.num_labels < least:
        raise UserError(f"--num_labels {args.num_labels} is too few for {classes} classes: choosing the SVM's C "
                        f"holds out {VALIDATION_FRACTION:.0%} of them, with every class on both sides, so at "
                        f"least {least}")


@command
def main(argv=None):
    args = parse_args(argv)
    from src.cpu.device import start_device
    start_device(args.device_target, args.device_id)  # before MindSpore is imported (see src/cpu/device.py)
    from src.run import trained
    from src.evaluation import representation

    if args.visualize:
        return visualize(args)
    check_num_labels(args)
    report = representation.run(args.ckpt_file, args.dataset, args.data_path, num_labels=args.num_labels,
                                classifier=args.classifier, seed=args.seed, batch_size=args.batch_size,
                                overrides=trained.overrides_from(args, "D"), jobs=args.jobs)
    report["output"] = os.path.join(output_folder(args, report["checkpoint"]), "verify.json")
    line = json.dumps(report)
    with open(report["output"], "w") as f:
        f.write(line + "\n")
    print(line)


def output_folder(args, ckpt_file):
    """--output_path, else the checkpoint's run directory, else its folder (created if missing)."""
    from src.run import trained

    folder = args.output_path or trained.run_dir_of(ckpt_file) or os.path.dirname(os.path.abspath(ckpt_file))
    os.makedirs(folder, exist_ok=True)
    return folder


def visualize(args):
    """verify.py --visualize: guided_backprop.png in --output_path (default: the run directory)."""
    from src.analysis import commands
    from src.data.labelled import load_splits
    from src.run import trained

    netD, arch, ckpt_file = trained.load(args.ckpt_file, "D", trained.overrides_from(args, "D"))
    splits, note = load_splits(args.dataset, args.data_path, arch["image_size"], arch["nc"], args.seed)
    path = commands.guided(netD, arch, splits["test"][0], output_folder(args, ckpt_file), args.channels, args.top,
                           args.seed, args.batch_size)
    print(f"discriminator {ckpt_file}: channels {','.join(map(str, args.channels))} of the last stage, top "
          f"{args.top} of {len(splits['test'][0])} test images ({note})")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
