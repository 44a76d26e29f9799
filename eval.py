"""Generate images with a trained generator.

python eval.py --ckpt_file CKPT_OR_RUN_DIR --output_path DIR [--num_images N] [--seed S] [--format grid|png|npz]
               [--interpolate K] [--batch_size B] [--device_target CPU|GPU|Ascend]
               [--numbered] [--arithmetic "A - B + C"] [--nearest K --dataset NAME [--data_path PATH]]
writes DIR/generate.png (a grid), plus DIR/images/*.png (png) or DIR/images.npz (npz: uint8 N,H,W,C), and with
--interpolate K DIR/interpolate.png (K latent walks). See src/outputs/generate.py.
The paper's analyses (src/analysis/): --numbered writes numbered.png and numbered_z.npz; --arithmetic, on those z,
arithmetic.png; --nearest K nearest.png and nearest.json (each sample's K nearest training images).
"""
import sys

from src.cli import ArgumentParser, check_memory, check_seed, command
from src.config import DEVICE_TARGETS
from src.analysis.arithmetic import load_numbered, parse_expression
from src.data import DATASETS
from src.errors import UserError
from src.outputs.generate import FORMATS, INTERPOLATION_STEPS, check_options, check_output_path


def parse_args(argv=None):
    from src.run.trained import add_arch_arguments, add_which_argument
    p = ArgumentParser(description="Generate images with a trained DCGAN generator.")
    p.add_argument("--ckpt_file", required=True, help="a generator_N.ckpt or a run directory (see --which)")
    p.add_argument("--output_path", default="./generated", help="directory for generate.png and the other outputs")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same images")
    p.add_argument("--format", choices=FORMATS, default="grid",
                   help="grid: generate.png only; png: also one PNG per image; npz: also images.npz")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help=f"also write interpolate.png: K latent walks of {INTERPOLATION_STEPS} images")
    p.add_argument("--batch_size", type=int, default=128, help="images per forward pass")
    p.add_argument("--device_target", choices=DEVICE_TARGETS, default="CPU")
    p.add_argument("--device_id", type=int, default=0)
    p.add_argument("--numbered", action="store_true",
                   help="also write numbered.png (each sample's index drawn on it) and numbered_z.npz (their z)")
    p.add_argument("--arithmetic", default=None, metavar='"A - B + C"',
                   help="write arithmetic.png: latent arithmetic on samples of numbered.png in --output_path; "
                        "each term a comma-separated list of sample indices whose z are averaged")
    p.add_argument("--nearest", type=int, default=0, metavar="K",
                   help="write nearest.png / nearest.json: each sample's K nearest training images (pixel and "
                        "D-feature distance), against the test set's as the reference; needs --dataset")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="the training data, for --nearest")
    p.add_argument("--data_path", default=None, help="dataset location, for --nearest (not for built-in ones)")
    add_which_argument(p)
    add_arch_arguments(p, ("G",))
    args = p.parse_args(argv)
    check_options(args.num_images, args.batch_size, args.format, args.interpolate)
    check_seed(args.seed)
    args.batch_size = min(args.batch_size, args.num_images)  # a larger batch would only be padding
    analysis_files = (["numbered.png", "numbered_z.npz"] if args.numbered else []) + \
        (["arithmetic.png"] if args.arithmetic is not None else []) + \
        (["nearest.png", "nearest.json"] if args.nearest else [])
    check_output_path(args.output_path, args.format, args.interpolate, analysis_files)
    if args.arithmetic is not None:
        # A malformed expression, or one naming a sample numbered.png does not have, fails before anything is
        # loaded or written (with --numbered, the samples are the ones this command numbers).
        count = args.num_images if args.numbered else len(load_numbered(args.output_path))
        parse_expression(args.arithmetic, count)
    if args.nearest < 0:
        raise UserError(f"--nearest must be a number of neighbours (at least 1), not {args.nearest}")
    if args.nearest and not args.dataset:
        raise UserError("--nearest needs --dataset (and --data_path unless it is built in): the training data")
    return args


@command
def main(argv=None):
    args = parse_args(argv)
    from src.cpu.device import start_device
    start_device(args.device_target, args.device_id)  # before MindSpore is imported (see src/cpu/device.py)
    import mindspore as ms
    from src.run import trained
    from src.outputs.generate import generate, generation_bytes

    netG, arch, ckpt_file = trained.load(args.ckpt_file, "G", trained.overrides_from(args, "G"),
                                            args.which)
    check_memory(generation_bytes(arch, args.num_images, args.batch_size),
                 f"--num_images {args.num_images} with --batch_size {args.batch_size}")
    written = generate(lambda z: netG(ms.Tensor(z)).asnumpy(), arch["nz"], args.output_path,
                       num_images=args.num_images, seed=args.seed, fmt=args.format,
                       batch_size=args.batch_size, interpolate=args.interpolate)
    print(f"generator {ckpt_file} ({arch['image_size']} px, nz {arch['nz']}, ngf {arch['ngf']}, "
          f"nc {arch['nc']}): {args.num_images} images, seed {args.seed}")
    written += analyses(args, netG, arch, ckpt_file)
    for path in written:
        print(f"wrote {path}")


def analyses(args, netG, arch, ckpt_file):
    """--numbered, --arithmetic, --nearest (src/analysis/commands.py). Returns the paths written."""
    from src.analysis import commands

    written = []
    if args.numbered:
        written += commands.numbered(netG, arch, args.output_path, args.num_images, args.seed, args.batch_size,
                                     ckpt_file)
    if args.arithmetic is not None:
        written += commands.arithmetic(netG, arch, args.output_path, args.arithmetic, args.seed)
    if args.nearest:
        written += commands.nearest(netG, arch, ckpt_file, args.nearest, args.dataset, args.data_path,
                                    args.output_path, args.num_images, args.seed, args.batch_size)
    return written


if __name__ == "__main__":
    sys.exit(main())
