"""Training images stored as MindRecord at the training resolution (written by src/data/convert.py for
prepare_data.py), and read back.

Each image is uint8 HWC bytes (4x smaller than the float32 the networks see) in MindRecord files written by
mindspore.mindrecord.FileWriter, optionally sharded into several files. `DIR/dataset.json` records what was stored
(image_size, nc, count, files, source with its split).

`reader(path, image_size)` is the `mindrecord` reader of create_dataset: MindDataset over those files (shuffle,
shards, seed and workers as for the other readers), each row's bytes viewed as (size, size, nc) uint8, after which
the shared transform list only normalises to [-1, 1] and transposes to CHW (its resize and crop are no-ops at the
stored size); its split is the source's split recorded in dataset.json. MindSpore is imported on first use only.
"""
import json
import os

import numpy as np

from src.data.options import CHANNELS, IMAGE_SIZES, NO_SPLIT
from src.data.source import Reader, mindspore_dataset
from src.errors import UserError

FORMAT = "dcgan-mindrecord"  # dataset.json's "format": what this module wrote
VERSION = 1
META_FILE = "dataset.json"
FILE_STEM = "images.mindrecord"  # FileWriter names the shards images.mindrecord0, 1, ... (one shard: no suffix)
SCHEMA = {"image": {"type": "bytes"}}  # MindRecord has no uint8 arrays; bytes hold the HWC pixels as they are


def is_mindrecord_dir(names):
    """True if a directory listing holds MindRecord files (how detect_format recognises prepare_data's output)."""
    return any(FILE_STEM in name for name in names)


# ---------------------------------------------------------------------------------------------------------------
# Reading

def read_metadata(path):
    """dataset.json of a converted directory, checked: the format, the sizes, and that every listed file is there."""
    meta_file = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_file):
        raise UserError(f"{path} has MindRecord files but no {META_FILE}: the conversion did not finish; "
                        "delete the directory and run prepare_data.py again")
    try:
        with open(meta_file) as f:
            meta = json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {meta_file}: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_file} was not written by prepare_data.py (no \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise UserError(f"{meta_file} is version {meta.get('version')!r} of the format; this code reads {VERSION}")
    if meta.get("image_size") not in IMAGE_SIZES or meta.get("nc") not in CHANNELS \
            or not isinstance(meta.get("files"), list) or not meta["files"]:
        raise UserError(f"{meta_file} is damaged: needs image_size in {IMAGE_SIZES}, nc in {CHANNELS} "
                        "and a list of files")
    missing = [f for f in meta["files"] if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}, listed in {META_FILE}")
    return meta


class _Unpack:
    """Map op: a row's bytes (MindDataset yields them as a 1-element fixed-width bytes array) -> uint8 HWC."""

    def __init__(self, shape):
        self.shape = shape

    def __call__(self, value):
        pixels = np.asarray(value).view(np.uint8)  # no copy; fixed width keeps trailing zero bytes
        if pixels.size != np.prod(self.shape):
            raise ValueError(f"a MindRecord image has {pixels.size} bytes, not {np.prod(self.shape)} "
                             f"({'x'.join(map(str, self.shape))}); the files do not match {META_FILE}")
        return pixels.reshape(self.shape)


def reader(path, image_size):
    """The create_dataset reader of a directory written by convert(): a Reader yielding uint8 HWC images."""
    meta = read_metadata(path)
    if meta["image_size"] != image_size:
        raise UserError(f"the MindRecord data in {path} is stored at {meta['image_size']} px but image_size "
                        f"{image_size} was asked: use --image_size {meta['image_size']}, or convert the source "
                        f"again with prepare_data.py --image_size {image_size}")
    files = [os.path.join(path, f) for f in meta["files"]]
    unpack = _Unpack((meta["image_size"], meta["image_size"], meta["nc"]))
    ds, _ = mindspore_dataset()

    def open_(num_parallel_workers=1, **options):
        source = ds.MindDataset(files, columns_list=["image"], num_parallel_workers=num_parallel_workers, **options)
        return source.map(operations=unpack, input_columns="image", num_parallel_workers=num_parallel_workers)

    # The files hold one split of their source, all of which is read; say which (older conversions did not record it).
    source = meta.get("source")
    split = source.get("split") if isinstance(source, dict) else None
    return Reader(open_, source_nc=meta["nc"], root=path,
                  split=split if isinstance(split, str) and split else NO_SPLIT)
