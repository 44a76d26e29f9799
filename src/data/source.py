"""A validated image source: what each reader in src/data/readers.py returns, and the MindSpore helpers every
pipeline over one uses. MindSpore is imported on first use only (see src/dataset.py)."""
from dataclasses import dataclass
from typing import Callable, Optional

from src.data.bad_files import Decoder
import numpy as np

from src.data.options import NO_SPLIT, ONLY_SPLIT
from src.errors import UserError


@dataclass
class Request:
    """What a builder needs to know besides the sampler options."""
    path: Optional[str]
    image_size: int
    nc: Optional[int]
    seed: int
    batch_size: int
    fake_size: Optional[int]
    split: str = "train"  # one of SPLITS


@dataclass
class Reader:
    """A validated source. open(**sampler options) creates the MindSpore dataset; it has an "image" column."""
    open: Callable
    source_nc: int
    encoded: Optional[str] = None  # how the "image" column holds undecoded files (see Decoder); None: pixels
    root: Optional[str] = None
    label: str = "label"  # for encoded readers: the reader's other column (reused to mark the top-up pass)
    locate: Optional[Callable] = None  # for encoded="bytes": [(size, sha1)] -> {(size, sha1): path} (see BadFiles)
    split: str = NO_SPLIT  # which split open() reads (DatasetInfo.split)
    pixels: Optional[object] = None  # the uint8 NHWC images, when open() slices them from memory (the digits)

    @property
    def first_ops(self):
        """The ops that turn the "image" column into uint8 HWC pixels, raising on a bad file (for readers that
        must see every image, like src/data/labelled.py; training skips bad files instead, see create_dataset)."""
        return [Decoder(self.encoded)] if self.encoded else []


def choose_split(requested, present):
    """(usage, description) for a dataset whose official splits on disk are `present` (a non-empty subset of
    ("train", "test")): the requested split when it is there, else the one split the directory holds."""
    if len(present) == 1:
        (only,) = present
        return only, only if requested == only else ONLY_SPLIT.format(only)
    return requested, requested


def mindspore_dataset():
    """mindspore.dataset and its vision ops, imported on first use (see the module docstring)."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision
    return ds, vision


def numpy_slices(images, labels=None):
    """open() for NumpySlicesDataset over `images` (column "image"; with `labels`, a second column "label"),
    always with one worker: slicing memory is trivial, and with more workers the underlying GeneratorDataset
    starts worker processes (seconds before the first batch)."""
    ds, _ = mindspore_dataset()
    columns, names = (images, ["image"]) if labels is None else ((images, np.asarray(labels)), ["image", "label"])
    return lambda **kw: ds.NumpySlicesDataset(columns, column_names=names, **dict(kw, num_parallel_workers=1))


def mindspore_reason(error):
    """The one useful line of a MindSpore pipeline error (they run to dozens of lines): for an error raised by
    Python code in the pipeline (e.g. Decoder), that exception's message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if any(line.startswith("- Python Call Stack") for line in lines):
        raised = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception")) and ": " in line]
        if raised:
            return raised[-1].split(": ", 1)[1]
    for line in lines:
        if line.startswith("[ERROR]"):
            return line[len("[ERROR]"):].strip()
    return lines[0] if lines else type(error).__name__


def count_images(dataset, name, path):
    """Images a reader will yield, from file headers and directory listings (no decoding)."""
    try:
        return dataset.get_dataset_size()
    except RuntimeError as error:
        raise UserError(f"cannot read {name} data in {path}: {mindspore_reason(error)}") from None
