"""Convert a dataset once into MindRecord at the training resolution, for fast reading by train.py.

python prepare_data.py --dataset NAME|auto --data_path SRC --output_path OUT_DIR --image_size 32|64
                       [--split train|test|all] [--nc 1|3] [--num_shards N] [--num_parallel_workers W] [--strict]
then: python train.py --dataset mindrecord --data_path OUT_DIR --image_size 32|64 ...
See src/data/mindrecord.py.
"""
import sys

from src.cli import ArgumentParser, command


def parser():
    from src.data import SPLITS
    from src.data.convert import SOURCES

    p = ArgumentParser(description="Convert an image dataset once into MindRecord files of uint8 images at the "
                                   "training resolution (read by train.py --dataset mindrecord).")
    p.add_argument("--dataset", default="auto", help="the source: one of " + ", ".join(SOURCES) + " (default: auto)")
    p.add_argument("--data_path", default=None, help="the source directory (not needed for digits and fake)")
    p.add_argument("--output_path", required=True, help="a new or empty directory for the MindRecord files")
    p.add_argument("--image_size", type=int, required=True, help="the training resolution: 32 or 64")
    p.add_argument("--split", choices=SPLITS, default="train",
                   help="the split of a dataset with official ones to convert (default: train, what train.py reads; "
                        "a directory holding only one split converts what it has)")
    p.add_argument("--nc", type=int, default=None, help="channels to store, 1 or 3 (default: the source's own)")
    p.add_argument("--num_shards", type=int, default=1, help="number of MindRecord files (default 1)")
    p.add_argument("--num_parallel_workers", type=int, default=2, help="decoding threads (default 2)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image file (default: skip such files and count them)")
    return p


@command
def main(argv=None):
    args = parser().parse_args(argv)
    from src.data.convert import convert

    convert(args.dataset, args.data_path, args.output_path, args.image_size, nc=args.nc,
            num_shards=args.num_shards, num_parallel_workers=args.num_parallel_workers, strict=args.strict,
            split=args.split, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
