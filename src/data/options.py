"""What a dataset request may be: the dataset names, image sizes, channels and splits, and the check of the options
create_dataset and the MindRecord converter take (each bad value is one UserError, raised before any pipeline runs).
config.py builds its command-line choices from these names, so they are defined once, here."""
import numpy as np

from src.errors import UserError

DATASETS = ("imagenet", "folder", "cifar10", "mnist", "celeba", "lsun", "lfw", "fake", "digits", "mindrecord",
            "auto")
BUILT_IN = ("fake", "digits")  # generated in memory, no data_path
IMAGE_SIZES = (32, 64)
CHANNELS = (1, 3)
SPLITS = ("train", "test", "all")
NO_SPLIT = "all (no split on disk)"  # info.split of a dataset without official splits
ONLY_SPLIT = "{} (the only split on disk)"  # info.split when the directory holds one split, not the one asked for
# The built-in digits have no official split: a stratified quarter is held out, always the same one (fixed seed, not
# the run's --seed), so training and verify.py agree on which 450 digits are test images.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


def check_int(value, name, low, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UserError(f"{name} must be an integer >= {low}, not {value!r}")


def check_options(name, image_size, batch_size, nc, num_parallel_workers, num_shards, shard_id, seed, num_samples,
                   fake_size, split="train"):
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if image_size not in IMAGE_SIZES:
        choices = ", ".join(map(str, IMAGE_SIZES))
        raise UserError(f"image size {image_size!r} is not supported; choose one of: {choices}")
    if nc is not None and nc not in CHANNELS:
        raise UserError(f"nc must be 1 or 3 (or None for the dataset's own channels), not {nc!r}")
    check_int(batch_size, "batch_size", 1)
    check_int(num_parallel_workers, "num_parallel_workers", 1)
    check_int(seed, "seed", 0)
    check_int(num_samples, "num_samples", 1, allow_none=True)
    check_int(fake_size, "fake_size", 1, allow_none=True)
    if (num_shards is None) != (shard_id is None):
        raise UserError("num_shards and shard_id go together: give both or neither")
    if num_shards is not None:
        check_int(num_shards, "num_shards", 1)
        if not (isinstance(shard_id, (int, np.integer)) and 0 <= shard_id < num_shards):
            raise UserError(f"shard_id must be in 0..{num_shards - 1}, not {shard_id!r}")
