"""Training images for DCGAN: `create_dataset`, the model zoo's entry point, over the readers in src/data/.

`create_dataset(name, data_path, ...)` returns `(ds, info)`: `ds` yields batches with one column "image", float32
NCHW in [-1, 1]; `info` says what was read. Each reader yields uint8 HWC images (or encoded files) and one shared
transform list makes the network input (src/data/transforms.py).

Only one split is read: `split` "train" (the default, as the references train), "test" or "all" (see
src/data/readers.py); `info.split` says what was actually read. Every bad input (unknown name, missing path,
unsupported size, too few images) is a UserError raised before any pipeline runs. A bad file inside a file-based
dataset is skipped, counted in `info.bad_files` and the epoch topped up to its full batch count
(src/data/bad_files.py), so every epoch, shard and resumed run keeps exactly `info.batches_per_epoch` batches.

MindSpore is imported on first use only: importing this module must not load it, because src/cpu/device.py sets CPU
environment variables that MindSpore reads once, when it loads.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Optional

from src.data import (BUILT_IN, NO_SPLIT, BadFiles, Request, batched_epoch, check_options, count_images,
                      decoded_twice, detect_format, existing_dir, mindspore_dataset, open_reader, pixel_transforms)
from src.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # resolved dataset name ('auto' becomes what was detected)
    nc: int  # channels of the produced images
    num_images: int  # images in the whole dataset, before sharding and num_samples
    batches_per_epoch: int  # per shard, after drop_remainder
    source_nc: int  # channels the reader produces before any conversion
    images_per_epoch: int  # per shard, after num_samples, before batching
    data_path: Optional[str] = None  # directory the reader was given (None for built-in datasets)
    split: str = NO_SPLIT  # what was read: "train", "test", "all", or that with why, e.g. ONLY_SPLIT, NO_SPLIT
    bad_files: Optional["BadFiles"] = field(default=None, compare=False)  # skipped files (see BadFiles)
    in_memory: bool = False  # each epoch's batches come from images held in memory (the digits), not from files


def create_dataset(name, data_path=None, image_size=32, batch_size=128, nc=None, shuffle=True,
                   num_parallel_workers=2, num_shards=None, shard_id=None, seed=0, drop_remainder=True,
                   num_samples=None, fake_size=None, strict=False, bad_files=None, split="train"):
    """Returns (ds, info): batches of one column "image", float32 (batch_size, nc, image_size, image_size) in
    [-1, 1], and a DatasetInfo. nc=None keeps the source's channels (1 for mnist/digits, 3 otherwise).
    `split` (train, test or all) picks the part of a dataset with official splits; info.split says what was read
    (see the module docstring).
    Bad image files are skipped and counted in info.bad_files: a new BadFiles(strict), or `bad_files` (from the
    info of an earlier epoch) to keep counting there. Iterate with info.bad_files.iterate to act on them."""
    check_options(name, image_size, batch_size, nc, num_parallel_workers, num_shards, shard_id, seed, num_samples,
                   fake_size, split)
    path = None
    if name not in BUILT_IN:
        path = existing_dir(data_path, name)
        if name == "auto":
            name = detect_format(path)
    reader = open_reader(name, Request(path, image_size, nc, seed, batch_size, fake_size, split))

    ds, _ = mindspore_dataset()
    ds.config.set_seed(seed)  # the readers' shuffle (and so which shard gets which image) draws from this seed
    # MindSpore rejects more workers than CPUs; a config written for a bigger machine should still run here.
    workers = min(num_parallel_workers, os.cpu_count() or 1)
    options = dict(shuffle=shuffle, num_samples=num_samples, num_shards=num_shards, shard_id=shard_id,
                   num_parallel_workers=workers)
    source = reader.open(**options)
    per_shard = count_images(source, name, reader.root)
    whole = per_shard
    if num_shards is not None or num_samples is not None:
        whole = count_images(reader.open(shuffle=False, num_parallel_workers=workers), name, reader.root)

    where = f" in {reader.root}" if reader.root else ""
    if reader.split != NO_SPLIT:
        where += f" (split {reader.split})"
    if per_shard == 0:
        raise UserError(f"{name}{where} has no images")
    if drop_remainder and per_shard < batch_size:
        share = f" ({per_shard} per shard)" if num_shards else f" ({per_shard} with num_samples)" if num_samples else ""
        raise UserError(f"{name}{where} has {whole} images{share}, fewer than one batch of {batch_size}; "
                        "lower batch_size or add images")

    out_nc = nc or reader.source_nc
    bad_files = bad_files or BadFiles(strict, reader.locate, reader.root)
    batches = per_shard // batch_size if drop_remainder else math.ceil(per_shard / batch_size)
    needed = batches * batch_size if drop_remainder else per_shard
    in_memory = reader.pixels is not None and drop_remainder
    if in_memory:  # the digits: whole batches from memory (src/data/in_memory.py)
        pipeline = batched_epoch(reader.pixels, image_size, reader.source_nc, out_nc, batch_size, shuffle, seed,
                                 num_shards, shard_id, num_samples)
    else:
        if reader.encoded:
            # Bad files are skipped, and the epoch topped up by a second pass (src/data/bad_files.py): a second
            # reader rather than repeat(), which warns every epoch that batches may mix epochs.
            pipeline = decoded_twice(reader, source, options, bad_files, needed, workers)
        else:
            pipeline = source.project(["image"])  # drop labels: a GAN only needs the images
        pipeline = pipeline.map(operations=pixel_transforms(image_size, reader.source_nc, out_nc),
                                input_columns="image", num_parallel_workers=workers)
        if reader.encoded:
            pipeline = pipeline.take(needed)
        pipeline = pipeline.batch(batch_size, drop_remainder=drop_remainder)

    info = DatasetInfo(name=name, nc=out_nc, num_images=whole, batches_per_epoch=batches,
                       source_nc=reader.source_nc, images_per_epoch=per_shard, data_path=reader.root,
                       split=reader.split, bad_files=bad_files, in_memory=in_memory)
    return pipeline, info
