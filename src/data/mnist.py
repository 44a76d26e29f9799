"""MNIST's idx files: the four standard files (train-images-idx3-ubyte, ...), uncompressed as MindSpore's
MnistDataset reads them, or gzip'ed (....gz) as MNIST is distributed.

A directory whose files are all uncompressed is read by MnistDataset. When any of them is gzip'ed, the files are
read with numpy instead (an idx file is a big-endian header, then raw uint8: images magic 2051, count, rows, cols;
labels magic 2049, count) and handed to NumpySlicesDataset with MnistDataset's columns, "image" uint8 (28, 28, 1)
and "label", so a download trains without gunzip. A directory may hold one split (train- or t10k- files) or both.
"""
import gzip
import os
import struct

import numpy as np

from src.data.source import Reader, choose_split, mindspore_dataset, numpy_slices
from src.errors import UserError

MNIST_FILES = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
SPLITS = ("train", "test")  # in MNIST_FILES' order
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def _on_disk(path, name):
    """The file `name` in `path`, uncompressed or as name.gz; None when neither is there."""
    for candidate in (name, name + ".gz"):
        if os.path.isfile(os.path.join(path, candidate)):
            return os.path.join(path, candidate)
    return None


def split_files(path):
    """{split: (images file, labels file)} of the splits whose two files are in `path` (plain or .gz). A split with
    only one of its two files is a UserError."""
    found = {}
    for split, (images, labels) in zip(SPLITS, MNIST_FILES):
        files = (_on_disk(path, images), _on_disk(path, labels))
        if any(files) and not all(files):
            raise UserError(f"MNIST in {path} needs both {images} and {labels} (or their .gz)")
        if all(files):
            found[split] = files
    return found


def has_files(names):
    """Whether a directory listing holds any MNIST idx file (plain or .gz): what detect_format looks for."""
    return any(f in names or f + ".gz" in names for pair in MNIST_FILES for f in pair)


def read_idx(file, magic):
    """The uint8 array of an idx file (plain or .gz) whose header starts with `magic`; a UserError if it is not one:
    images (N, rows, cols), labels (N,)."""
    opener = gzip.open if file.endswith(".gz") else open
    try:
        with opener(file, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:  # gzip raises BadGzipFile (an OSError) or EOFError when truncated
        raise UserError(f"cannot read {file}: {error}") from None
    dims = 3 if magic == IMAGES_MAGIC else 1
    header = 4 * (1 + dims)
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise UserError(f"{file} is not an MNIST idx file (its header should start with magic number {magic})")
    shape = struct.unpack(f">{dims}I", data[4:header])
    if len(data) - header != np.prod(shape):
        raise UserError(f"{file} holds {len(data) - header} bytes after its header, not {np.prod(shape)} "
                        f"for its shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_split(images_file, labels_file):
    """(images uint8 (N, rows, cols, 1), labels int32 (N,)) of one split's two idx files."""
    images, labels = read_idx(images_file, IMAGES_MAGIC), read_idx(labels_file, LABELS_MAGIC)
    if len(images) != len(labels):
        raise UserError(f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels")
    return images[..., None], labels.astype(np.int32)


def opener(path, files, usage):
    """open(**sampler options) for the MNIST split `usage` ("train", "test" or "all") of `files` (split_files)."""
    if not any(f.endswith(".gz") for pair in files.values() for f in pair):
        ds, _ = mindspore_dataset()
        return lambda **kw: ds.MnistDataset(path, usage=usage, **kw)
    # "all" in MnistDataset's order: its files sorted by name, so t10k- (test) before train-.
    parts = [read_split(*files[s]) for s in ("test", "train") if s in files and usage in (s, "all")]
    images, labels = (np.concatenate(column) for column in zip(*parts))
    return numpy_slices(images, labels)


def reader(req):
    """The Reader of the MNIST directory req.path (its requested split, or the one split it holds)."""
    files = split_files(req.path)
    if not files:
        raise UserError(f"no MNIST idx files ({', '.join(MNIST_FILES[0])}, or their .gz) in {req.path}")
    usage, split = choose_split(req.split, list(files))
    return Reader(opener(req.path, files, usage), source_nc=1, root=req.path, split=split)
