"""Training images for DCGAN, read with MindSpore's own dataset readers.

`create_dataset(name, data_path, ...)` returns `(ds, info)`: `ds` yields batches with one column "image", float32
NCHW in [-1, 1]; `info` says what was read. Each reader below yields uint8 HWC images (or encoded files) and one
shared transform list makes the network input: decode -> resize the short side -> center crop -> channel conversion
-> scale to [-1, 1] -> HWC to CHW.

Every bad input (unknown name, missing path, unsupported size, too few images) is a UserError raised before any
pipeline runs. MindSpore is imported on first use only: importing this module (for DATASETS or detect_format) must
not load it, because src/device.py sets CPU environment variables that MindSpore reads once, when it loads.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from src.errors import UserError

DATASETS = ("imagenet", "folder", "cifar10", "mnist", "celeba", "lsun", "lfw", "fake", "digits", "auto")
BUILT_IN = ("fake", "digits")  # generated in memory, no data_path
IMAGE_SIZES = (32, 64)
CHANNELS = (1, 3)

# MindSpore matches extensions case-sensitively, so list both spellings.
IMAGE_EXTENSIONS = tuple(e for ext in (".jpg", ".jpeg", ".png", ".bmp") for e in (ext, ext.upper()))
CIFAR10_BATCH_BYTES = 10000 * (1 + 32 * 32 * 3)  # Cifar10Dataset reads exactly 10,000 records from every batch file
MNIST_FILES = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
# LSUNDataset only picks up folders whose names contain one of these categories plus "_train" or "_val".
LSUN_CATEGORIES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room", "dining_room", "kitchen",
                   "living_room", "restaurant", "tower")
FAKE_BATCHES = 10  # default size of the fake dataset, in batches


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # resolved dataset name ('auto' becomes what was detected)
    nc: int  # channels of the produced images
    num_images: int  # images in the whole dataset, before sharding and num_samples
    batches_per_epoch: int  # per shard, after drop_remainder
    source_nc: int  # channels the reader produces before any conversion
    images_per_epoch: int  # per shard, after num_samples, before batching
    data_path: Optional[str] = None  # directory the reader was given (None for built-in datasets)


@dataclass
class _Request:
    """What a builder needs to know besides the sampler options."""
    path: Optional[str]
    image_size: int
    nc: Optional[int]
    seed: int
    batch_size: int
    fake_size: Optional[int]


@dataclass
class _Reader:
    """A validated source. open(**sampler options) creates the MindSpore dataset; it has an "image" column."""
    open: Callable
    source_nc: int
    first_ops: List = field(default_factory=list)  # run before resizing, e.g. Decode for encoded files
    root: Optional[str] = None


def _ms():
    """mindspore.dataset and its vision ops, imported on first use (see the module docstring)."""
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision
    return ds, vision


# ---------------------------------------------------------------------------------------------------------------
# Looking at the disk (cheap: directory listings, file sizes, the first line of a file)

def _is_image(name):
    return name.endswith(IMAGE_EXTENSIONS)


def _list_images(directory):
    """Image files directly inside `directory`, sorted."""
    with os.scandir(directory) as entries:
        return sorted(e.path for e in entries if e.is_file() and _is_image(e.name))


def _has_image(directory):
    with os.scandir(directory) as entries:
        return any(e.is_file() and _is_image(e.name) for e in entries)


def _subdirs(directory):
    with os.scandir(directory) as entries:
        return sorted(e.path for e in entries if e.is_dir())


def _existing_dir(data_path, name):
    if not data_path:
        raise UserError(f"dataset '{name}' needs a data_path (a directory)")
    path = os.path.abspath(os.path.expanduser(str(data_path)))  # abspath also drops a trailing '/'
    if not os.path.exists(path):
        raise UserError(f"data path {path} does not exist")
    if not os.path.isdir(path):
        raise UserError(f"data path {path} is not a directory")
    if not os.listdir(path):
        raise UserError(f"data path {path} is empty")
    return path


def _cifar10_batches(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".bin") and "batch" in f)


def _cifar10_root(path):
    """The directory holding the CIFAR-10 binary batches: `path` itself or its cifar-10-batches-bin/."""
    for root in (path, os.path.join(path, "cifar-10-batches-bin")):
        if os.path.isdir(root) and _cifar10_batches(root):
            return root
    return None


def _lsun_folders(path):
    return [d for d in _subdirs(path)
            if any(c + s in os.path.basename(d) for c in LSUN_CATEGORIES for s in ("_train", "_val"))]


def _image_subdirs(path):
    return [d for d in _subdirs(path) if _has_image(d)]


def detect_format(data_path):
    """Return one of cifar10 / mnist / celeba / lsun / folder from what is on disk at data_path, checked in that order:
    cifar10: *batch*.bin files here or in cifar-10-batches-bin/ (or the unreadable python version, to explain it);
    mnist: train-/t10k- idx files (or their .gz, to explain it); celeba: list_attr_celeba.txt or img_align_celeba/;
    lsun: <category>_train / <category>_val folders; folder: images here or in sub-folders.
    Raises UserError if the path is missing, empty or holds none of these."""
    path = _existing_dir(data_path, "auto")
    names = set(os.listdir(path))
    if _cifar10_root(path) or "cifar-10-batches-py" in names:
        return "cifar10"
    if any(f in names or f + ".gz" in names for pair in MNIST_FILES for f in pair):
        return "mnist"
    if "list_attr_celeba.txt" in names or "img_align_celeba" in names:
        return "celeba"
    if _lsun_folders(path):
        return "lsun"
    if _image_subdirs(path) or _has_image(path):
        return "folder"
    raise UserError(f"nothing recognisable in {path}: expected CIFAR-10 binary batches (*.bin), MNIST idx files, "
                    "CelebA list_attr_celeba.txt, LSUN <category>_train folders, or images "
                    f"({' '.join(IMAGE_EXTENSIONS[::2])}) flat or in class sub-folders")


# ---------------------------------------------------------------------------------------------------------------
# One builder per reader. Each validates what it needs on disk, then returns a _Reader.

def _cifar10(req):
    root = _cifar10_root(req.path)
    if root is None:
        hint = " (found the python version; MindSpore reads the binary version)" if os.path.isdir(
            os.path.join(req.path, "cifar-10-batches-py")) else ""
        raise UserError(f"no CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin) in {req.path}{hint}")
    for name in _cifar10_batches(root):
        size = os.path.getsize(os.path.join(root, name))
        if size != CIFAR10_BATCH_BYTES:
            raise UserError(f"{os.path.join(root, name)} is {size} bytes, not a CIFAR-10 binary batch "
                            f"({CIFAR10_BATCH_BYTES} bytes: 10000 records of 1 label + 3072 pixel bytes)")
    ds, _ = _ms()
    # usage="all": train and test batches both count when present
    return _Reader(lambda **kw: ds.Cifar10Dataset(root, usage="all", **kw), source_nc=3, root=root)


def _mnist(req):
    path = req.path
    found = 0
    for images, labels in MNIST_FILES:
        have = [os.path.isfile(os.path.join(path, f)) for f in (images, labels)]
        if any(have) and not all(have):
            raise UserError(f"MNIST in {path} needs both {images} and {labels}")
        found += all(have)
    if not found:
        gz = any(os.path.isfile(os.path.join(path, f + ".gz")) for pair in MNIST_FILES for f in pair)
        raise UserError(f"no MNIST idx files ({', '.join(MNIST_FILES[0])}) in {path}"
                        + ("; decompress the .gz files first (gunzip)" if gz else ""))
    ds, _ = _ms()
    return _Reader(lambda **kw: ds.MnistDataset(path, usage="all", **kw), source_nc=1, root=path)


def _celeba_first_image(attr_file):
    """Name of the first image in list_attr_celeba.txt (line 1: count, line 2: attribute names)."""
    with open(attr_file) as f:
        lines = [f.readline() for _ in range(3)]
    if not lines[0].strip().isdigit() or not lines[2].split():
        raise UserError(f"{attr_file} is not a CelebA attribute list (line 1: image count, line 2: attribute "
                        "names, then one '<image> <attributes>' line per image)")
    return lines[2].split()[0]


def _celeba(req):
    path = req.path
    ds, vision = _ms()
    # CelebADataset opens each image listed in list_attr_celeba.txt next to that file (MindSpore's documented layout).
    for root in (path, os.path.join(path, "img_align_celeba")):
        attr = os.path.join(root, "list_attr_celeba.txt")
        if os.path.isfile(attr) and os.path.isfile(os.path.join(root, _celeba_first_image(attr))):
            return _Reader(lambda **kw: ds.CelebADataset(root, usage="all", **kw), source_nc=3,
                           first_ops=[vision.Decode()], root=root)
    # The official download keeps the images in img_align_celeba/ (img_align_celeba/img_align_celeba/ on Kaggle),
    # away from list_attr_celeba.txt, where CelebADataset cannot find them. The attributes are not needed for a
    # GAN, so read that folder as a flat folder of images.
    for images in (os.path.join(path, "img_align_celeba"), os.path.join(path, "img_align_celeba", "img_align_celeba")):
        if os.path.isdir(images) and _has_image(images):
            return _file_list_reader(_list_images(images), images)
    raise UserError(f"no CelebA images in {path}: expected list_attr_celeba.txt next to the images it lists, "
                    "or the images in img_align_celeba/")


def _lsun(req):
    path = req.path
    folders = _lsun_folders(path)
    if not folders:
        raise UserError(f"no LSUN folders in {path}: expected <category>_train/ or <category>_val/ image folders, "
                        f"category one of {', '.join(LSUN_CATEGORIES)}")
    for folder in folders:
        # LSUNDataset would take the database files for images and fail to decode them.
        if os.path.exists(os.path.join(folder, "data.mdb")):
            raise UserError(f"{folder} is an lmdb database; MindSpore's LSUNDataset reads JPEG folders "
                            "(<category>_train/*.jpg), so export the images from the lmdb first")
    ds, vision = _ms()
    return _Reader(lambda **kw: ds.LSUNDataset(path, usage="all", **kw), source_nc=3,
                   first_ops=[vision.Decode()], root=path)


def _numpy_slices(data):
    """open() for NumpySlicesDataset over `data`, always with one worker: slicing memory is trivial, and with more
    workers the underlying GeneratorDataset starts worker processes (about 5 s before the first batch)."""
    ds, _ = _ms()
    return lambda **kw: ds.NumpySlicesDataset(data, column_names=["image"], **dict(kw, num_parallel_workers=1))


def _read_file(path):
    _, vision = _ms()
    return vision.read_file(str(path))


def _file_list_reader(files, root):
    # ImageFolderDataset needs class sub-folders. Pointed at the parent with class_indexing={folder: 0} it reads the
    # right files, but its get_dataset_size() still counts every sibling folder. A list of paths through
    # NumpySlicesDataset keeps the count, shuffling and sharding exact; MindSpore still reads and decodes the files.
    _, vision = _ms()
    return _Reader(_numpy_slices(files), source_nc=3, first_ops=[_read_file, vision.Decode()], root=root)


def _image_folder(req):
    """imagenet / folder / lfw: class sub-folders of images (ImageFolderDataset), or one flat folder of images."""
    path = req.path
    ds, vision = _ms()
    if _image_subdirs(path):
        # Images lying directly in `path` next to class folders are not read (ImageFolderDataset ignores them).
        return _Reader(lambda **kw: ds.ImageFolderDataset(path, extensions=list(IMAGE_EXTENSIONS), **kw),
                       source_nc=3, first_ops=[vision.Decode()], root=path)
    files = _list_images(path)
    if not files:
        raise UserError(f"no images ({' '.join(IMAGE_EXTENSIONS[::2])}) in {path} or its sub-folders")
    return _file_list_reader(files, path)


def _fake(req):
    """Seeded random images at the target size, in the requested channels."""
    ds, _ = _ms()
    size, nc = req.image_size, req.nc or 3
    num = req.fake_size or FAKE_BATCHES * req.batch_size
    return _Reader(lambda **kw: ds.FakeImageDataset(num_images=num, image_size=(size, size, nc),
                                                    base_seed=req.seed, **kw), source_nc=nc)


def _digits(req):
    """scikit-learn's 1,797 8x8 digits (values 0..16, shipped with the package), as uint8 0..255."""
    from sklearn.datasets import load_digits

    images = np.rint(load_digits().images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    return _Reader(_numpy_slices(images), source_nc=1)


_BUILDERS = {
    "imagenet": _image_folder,
    "folder": _image_folder,
    "lfw": _image_folder,
    "cifar10": _cifar10,
    "mnist": _mnist,
    "celeba": _celeba,
    "lsun": _lsun,
    "fake": _fake,
    "digits": _digits,
}


# ---------------------------------------------------------------------------------------------------------------
# The pipeline

def _add_channel_axis(image):
    # ConvertColor(RGB2GRAY) returns (H, W); the network wants a channel axis.
    return image[..., None]


def _transforms(image_size, source_nc, nc):
    _, vision = _ms()
    ops = [vision.Resize(image_size, vision.Inter.BILINEAR),  # an int resizes the short side, keeping the aspect
           vision.CenterCrop(image_size)]
    if source_nc == 1 and nc == 3:
        ops.append(vision.ConvertColor(vision.ConvertMode.COLOR_GRAY2RGB))
    elif source_nc == 3 and nc == 1:
        ops += [vision.ConvertColor(vision.ConvertMode.COLOR_RGB2GRAY), _add_channel_axis]
    # uint8 0..255 -> float32 -1..1. Normalize hits both ends exactly; Rescale(1/127.5, -1) gives 255 -> 1.0000001.
    ops += [vision.Normalize(mean=[127.5] * nc, std=[127.5] * nc), vision.HWC2CHW()]
    return ops


def _mindspore_reason(error):
    """The one useful line of a MindSpore pipeline error (they run to dozens of lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("[ERROR]"):
            return line[len("[ERROR]"):].strip()
    return lines[0] if lines else type(error).__name__


def _count(dataset, name, path):
    """Images a reader will yield, from file headers and directory listings (no decoding)."""
    try:
        return dataset.get_dataset_size()
    except RuntimeError as error:
        raise UserError(f"cannot read {name} data in {path}: {_mindspore_reason(error)}") from None


def _check_int(value, name, low, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UserError(f"{name} must be an integer >= {low}, not {value!r}")


def _check_options(name, image_size, batch_size, nc, num_parallel_workers, num_shards, shard_id, seed, num_samples,
                   fake_size):
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    if image_size not in IMAGE_SIZES:
        choices = ", ".join(map(str, IMAGE_SIZES))
        raise UserError(f"image size {image_size!r} is not supported; choose one of: {choices}")
    if nc is not None and nc not in CHANNELS:
        raise UserError(f"nc must be 1 or 3 (or None for the dataset's own channels), not {nc!r}")
    _check_int(batch_size, "batch_size", 1)
    _check_int(num_parallel_workers, "num_parallel_workers", 1)
    _check_int(seed, "seed", 0)
    _check_int(num_samples, "num_samples", 1, allow_none=True)
    _check_int(fake_size, "fake_size", 1, allow_none=True)
    if (num_shards is None) != (shard_id is None):
        raise UserError("num_shards and shard_id go together: give both or neither")
    if num_shards is not None:
        _check_int(num_shards, "num_shards", 1)
        if not (isinstance(shard_id, (int, np.integer)) and 0 <= shard_id < num_shards):
            raise UserError(f"shard_id must be in 0..{num_shards - 1}, not {shard_id!r}")


def create_dataset(name, data_path=None, image_size=32, batch_size=128, nc=None, shuffle=True,
                   num_parallel_workers=2, num_shards=None, shard_id=None, seed=0, drop_remainder=True,
                   num_samples=None, fake_size=None):
    """Returns (ds, info): batches of one column "image", float32 (batch_size, nc, image_size, image_size) in
    [-1, 1], and a DatasetInfo. nc=None keeps the source's channels (1 for mnist/digits, 3 otherwise)."""
    _check_options(name, image_size, batch_size, nc, num_parallel_workers, num_shards, shard_id, seed, num_samples,
                   fake_size)
    path = None
    if name not in BUILT_IN:
        path = _existing_dir(data_path, name)
        if name == "auto":
            name = detect_format(path)
    reader = _BUILDERS[name](_Request(path, image_size, nc, seed, batch_size, fake_size))

    ds, _ = _ms()
    ds.config.set_seed(seed)  # the readers' shuffle (and so which shard gets which image) draws from this seed
    # MindSpore rejects more workers than CPUs; a config written for a bigger machine should still run here.
    workers = min(num_parallel_workers, os.cpu_count() or 1)
    source = reader.open(shuffle=shuffle, num_samples=num_samples, num_shards=num_shards, shard_id=shard_id,
                         num_parallel_workers=workers)
    per_shard = _count(source, name, reader.root)
    whole = per_shard
    if num_shards is not None or num_samples is not None:
        whole = _count(reader.open(shuffle=False, num_parallel_workers=workers), name, reader.root)

    where = f" in {reader.root}" if reader.root else ""
    if per_shard == 0:
        raise UserError(f"{name}{where} has no images")
    if drop_remainder and per_shard < batch_size:
        share = f" ({per_shard} per shard)" if num_shards else f" ({per_shard} with num_samples)" if num_samples else ""
        raise UserError(f"{name}{where} has {whole} images{share}, fewer than one batch of {batch_size}; "
                        "lower batch_size or add images")

    out_nc = nc or reader.source_nc
    pipeline = source.project(["image"])  # drop labels: a GAN only needs the images
    pipeline = pipeline.map(operations=reader.first_ops + _transforms(image_size, reader.source_nc, out_nc),
                            input_columns="image", num_parallel_workers=workers)
    pipeline = pipeline.batch(batch_size, drop_remainder=drop_remainder)

    batches = per_shard // batch_size if drop_remainder else math.ceil(per_shard / batch_size)
    info = DatasetInfo(name=name, nc=out_nc, num_images=whole, batches_per_epoch=batches,
                       source_nc=reader.source_nc, images_per_epoch=per_shard, data_path=reader.root)
    return pipeline, info
