"""Export a trained generator, or the discriminator's feature extractor, for deployment.

python export.py --ckpt_file CKPT_OR_RUN_DIR --file_format MINDIR|ONNX|AIR --file_name NAME [--net G|D]
                 [--batch_size B] [--device_target CPU|GPU|Ascend]
writes NAME.mindir / NAME.onnx / NAME.air. --net G (default): z (B, nz, 1, 1) -> images (B, nc, S, S) in [-1, 1];
--net D: images -> the features verify.py classifies (every D stage max-pooled to 4x4, concatenated).
See src/outputs/export_model.py.
"""
import sys

import numpy as np

from src.cli import ArgumentParser, command
from src.config import DEVICE_TARGETS
from src.errors import UserError
from src.outputs.export_model import FORMATS, check_output, check_target


def parse_args(argv=None):
    from src.run.trained import add_arch_arguments, add_which_argument
    p = ArgumentParser(description="Export a trained DCGAN generator or discriminator feature extractor.")
    p.add_argument("--ckpt_file", required=True,
                   help="a generator_N.ckpt / discriminator_N.ckpt, or a run directory (see --which)")
    p.add_argument("--net", choices=("G", "D"), default="G",
                   help="G: the generator; D: the discriminator's feature extractor used by verify.py")
    p.add_argument("--file_format", choices=FORMATS, default="MINDIR")
    p.add_argument("--file_name", default=None, help="output name, suffix added (default: dcgan_G / dcgan_D)")
    p.add_argument("--batch_size", type=int, default=1, help="the batch size the exported model takes")
    p.add_argument("--device_target", choices=DEVICE_TARGETS, default="CPU")
    p.add_argument("--device_id", type=int, default=0)
    add_which_argument(p)
    add_arch_arguments(p, ("G", "D"))
    args = p.parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, not {args.batch_size}")
    args.file_name = args.file_name or f"dcgan_{args.net}"
    check_target(args.file_format, args.device_target)
    check_output(args.file_name, args.file_format)
    return args


@command
def main(argv=None):
    args = parse_args(argv)
    from src.cpu.device import start_device
    start_device(args.device_target, args.device_id)  # before MindSpore is imported (see src/cpu/device.py)
    from src.run import trained
    from src.outputs.export_model import export

    network, arch, ckpt_file = trained.load(args.ckpt_file, args.net, trained.overrides_from(args, args.net),
                                             args.which)
    rng = np.random.default_rng(0)  # any input traces the same graph
    if args.net == "G":
        shape = (args.batch_size, arch["nz"], 1, 1)
    else:
        from src.evaluation.representation import FeatureExtractor
        network = FeatureExtractor(network, arch["image_size"])
        shape = (args.batch_size, arch["nc"], arch["image_size"], arch["image_size"])
    info = {key: str(value) for key, value in arch.items()}
    info["checkpoint"] = ckpt_file
    path = export(network, rng.standard_normal(shape).astype(np.float32), args.file_name, args.file_format, info)
    print(f"exported {trained.KIND[args.net]} {ckpt_file} as {args.file_format}, input {shape}: {path}")


if __name__ == "__main__":
    sys.exit(main())
