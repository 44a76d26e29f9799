"""Generate images from an exported generator MINDIR alone (no checkpoint, no network source code).

python infer.py --mindir NAME.mindir --output_path DIR [--num_images N] [--seed S] [--format grid|png|npz]
                [--interpolate K] [--device_target CPU|GPU|Ascend]
The same outputs as eval.py (see src/outputs/generate.py), and for the same seed the same images as eval.py gives with
the checkpoint the MINDIR was exported from. The latent size and batch size are read from the MINDIR's input.
"""
import sys

from src.cli import ArgumentParser, check_memory, check_seed, command
from src.config import DEVICE_TARGETS
from src.errors import UserError
from src.outputs.generate import FORMATS, INTERPOLATION_STEPS, check_options, check_output_path


def parse_args(argv=None):
    p = ArgumentParser(description="Generate images from a generator exported with export.py --file_format MINDIR.")
    p.add_argument("--mindir", required=True, help="a generator exported by export.py (--net G)")
    p.add_argument("--output_path", default="./generated")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same images")
    p.add_argument("--format", choices=FORMATS, default="grid")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help=f"also write interpolate.png: K latent walks of {INTERPOLATION_STEPS} images")
    p.add_argument("--device_target", choices=DEVICE_TARGETS, default="CPU")
    p.add_argument("--device_id", type=int, default=0)
    args = p.parse_args(argv)
    check_options(args.num_images, 1, args.format, args.interpolate)
    check_seed(args.seed)
    check_output_path(args.output_path, args.format, args.interpolate)
    return args


@command
def main(argv=None):
    args = parse_args(argv)
    from src.cpu.device import start_device
    start_device(args.device_target, args.device_id)  # before MindSpore is imported (see src/cpu/device.py)
    import mindspore as ms
    import mindspore.nn as nn
    from src.outputs.export_model import mindir_info, mindir_input_shape
    from src.outputs.generate import generate

    shape = mindir_input_shape(args.mindir)
    if mindir_info(args.mindir).get("net", "G") != "G" or len(shape) != 4 or shape[2:] != [1, 1]:
        raise UserError(f"{args.mindir} takes input {shape}, not a latent batch (B, nz, 1, 1): "
                        "export the generator (export.py --net G)")
    batch_size, nz = shape[0], shape[1]
    pixels = 4 * 3 * 64 * 64  # float32 images at the largest size: the MINDIR's output size is known only when run
    check_memory(args.num_images * (4 * nz + pixels + pixels // 4), f"--num_images {args.num_images}")
    graph = nn.GraphCell(ms.load(args.mindir))
    written = generate(lambda z: graph(ms.Tensor(z)).asnumpy(), nz, args.output_path,
                       num_images=args.num_images, seed=args.seed, fmt=args.format, batch_size=batch_size,
                       interpolate=args.interpolate)
    print(f"generator MINDIR {args.mindir} (input {shape}): {args.num_images} images, seed {args.seed}")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
