"""Training images for DCGAN, read with MindSpore's own dataset readers.

`create_dataset(name, data_path, ...)` returns `(ds, info)`: `ds` yields batches with one column "image", float32
NCHW in [-1, 1]; `info` says what was read. Each reader below yields uint8 HWC images (or encoded files) and one
shared transform list makes the network input: decode -> resize the short side -> center crop -> channel conversion
-> scale to [-1, 1] -> HWC to CHW.

Only one split is read: `split` "train" (the default, as the references train), "test" or "all", mapped onto each
dataset's official split (CIFAR-10 and MNIST files, CelebA's list_eval_partition.txt, LSUN's _train/_val folders,
and for the built-in digits a fixed stratified hold-out shared with src/labelled_data.py, so verify.py never
classifies a digit D was trained on). A directory holding only one split trains on what it has; datasets without
official splits (image folders, fake, MindRecord) are read whole. `info.split` says what was actually read.

Every bad input (unknown name, missing path, unsupported size, too few images) is a UserError raised before any
pipeline runs. A bad file inside a file-based dataset (unreadable, truncated, not an image) cannot be found without
decoding every file, so it is dealt with while training: it is skipped (never fed to the networks) and counted in
`info.bad_files`, and an epoch short of images is topped up to its full batch count with the first good images of
a second pass over the shard, so every epoch, shard and resumed run keeps exactly `info.batches_per_epoch` batches,
in an order that depends on the seed alone (see _TopUp). `BadFiles.iterate` runs one epoch: it logs what was
skipped, and stops the run (UserError) at the first bad file when strict, or when more than half of the files are
bad (the top-up pass cannot fill the epoch).

MindSpore is imported on first use only: importing this module (for DATASETS or detect_format) must not load it,
because src/device.py sets CPU environment variables that MindSpore reads once, when it loads.
"""
import hashlib
import io
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

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
    split: str = NO_SPLIT  # what was read: "train", "test", "all", or that with why, e.g. ONLY_SPLIT, NO_SPLIT
    bad_files: Optional["BadFiles"] = field(default=None, compare=False)  # skipped files (see BadFiles)


@dataclass
class _Request:
    """What a builder needs to know besides the sampler options."""
    path: Optional[str]
    image_size: int
    nc: Optional[int]
    seed: int
    batch_size: int
    fake_size: Optional[int]
    split: str = "train"  # one of SPLITS


@dataclass
class _Reader:
    """A validated source. open(**sampler options) creates the MindSpore dataset; it has an "image" column."""
    open: Callable
    source_nc: int
    encoded: Optional[str] = None  # how the "image" column holds undecoded files (see _Decoder); None: pixels
    root: Optional[str] = None
    label: str = "label"  # for encoded readers: the reader's other column (reused to mark the top-up pass)
    locate: Optional[Callable] = None  # for encoded="bytes": [(size, sha1)] -> {(size, sha1): path} (see BadFiles)
    split: str = NO_SPLIT  # which split open() reads (DatasetInfo.split)

    @property
    def first_ops(self):
        """The ops that turn the "image" column into uint8 HWC pixels, raising on a bad file (for readers that
        must see every image, like src/labelled_data.py; training skips bad files instead, see create_dataset)."""
        return [_Decoder(self.encoded)] if self.encoded else []


class BadFiles:
    """The image files a pipeline could not decode (unreadable, truncated, not an image) and so skipped. Shared by
    the pipeline's worker threads; passed back to create_dataset for a later epoch, it keeps counting there, each
    file once. Files are keyed by path; LSUNDataset does not say which file it read, so an LSUN file is keyed by
    (size, sha1) and its path looked up on disk (one scan of the folders) when it is named."""

    LISTED = 10  # at most this many newly found files are named in one report

    def __init__(self, strict=False, locate=None, root=None):
        self.strict = strict
        self._locate, self._root = locate, root  # locate(keys) -> {key: path} for (size, sha1) keys
        self._lock = threading.Lock()
        self._reasons = {}  # key -> reason, in the order found
        self._names = {}  # (size, sha1) key -> its path (or a description), once looked up
        self._reported = 0

    def add(self, key, reason):
        with self._lock:
            self._reasons.setdefault(key, reason)

    @property
    def count(self):
        return len(self._reasons)

    def _entries(self, start=0, stop=None):
        """[(name, reason)] of the bad files found in that range, in the order found."""
        with self._lock:
            entries = list(self._reasons.items())[start:stop]
        unnamed = [key for key, _ in entries if not isinstance(key, str) and key not in self._names]
        if unnamed:
            found = self._locate(unnamed) if self._locate else {}
            for key in unnamed:
                self._names[key] = found.get(key) or f"a file of {key[0]} bytes in {self._root}"
        return [(key if isinstance(key, str) else self._names[key], reason) for key, reason in entries]

    @property
    def first(self):
        """'path: reason' of the first bad file found, or None."""
        entries = self._entries(0, 1)
        return f"{entries[0][0]}: {entries[0][1]}" if entries else None

    def summary(self):
        s = "" if self.count == 1 else "s"
        return f"skipped {self.count} unreadable image file{s} so far (first: {self.first})"

    def report(self):
        """Log lines for the files found since the last report: the running count, then each new file (at most
        LISTED of them). Empty if none was found."""
        count, start = self.count, self._reported
        if count == start:
            return []
        self._reported = count
        lines = [self.summary()]
        lines += [f"  skipped {name}: {reason}" for name, reason in self._entries(start, start + self.LISTED)]
        if count - start > self.LISTED:
            lines.append(f"  ... and {count - start - self.LISTED} more")
        return lines

    def _check_strict(self):
        if self.strict and self.count:
            raise UserError(f"bad image file {self.first} (--strict stops at the first one; without it bad files "
                            "are skipped and counted)")

    def iterate(self, dataset, batches, log=None):
        """The first `batches` rows of one pass over `dataset` (as dataset.create_tuple_iterator(num_epochs=1) yields
        them; it stops there rather than wait for the end of the pipeline). Raises UserError when strict and a bad
        file was found, or when the pass ends short (too many bad files for the top-up pass to fill the epoch).
        When the pass ends (or the caller stops early) passes each line of report() to log(line)."""
        done = 0
        try:
            if batches > 0:
                for row in dataset.create_tuple_iterator(num_epochs=1):
                    self._check_strict()
                    yield row
                    done += 1
                    if done == batches:
                        break
            self._check_strict()
            if done < batches:
                raise UserError(f"only {done} of the epoch's {batches} batches could be formed: "
                                f"{self.summary()}; more than half of the files are bad, remove or replace them")
        finally:
            if log and not self.strict:
                for line in self.report():
                    log(line)


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
    """Return one of mindrecord / cifar10 / mnist / celeba / lsun / folder from what is on disk at data_path, checked
    in that order: mindrecord: prepare_data.py's images.mindrecord* files;
    cifar10: *batch*.bin files here or in cifar-10-batches-bin/ (or the unreadable python version, to explain it);
    mnist: train-/t10k- idx files (or their .gz, to explain it); celeba: list_attr_celeba.txt or img_align_celeba/;
    lsun: <category>_train / <category>_val folders; folder: images here or in sub-folders.
    Raises UserError if the path is missing, empty or holds none of these."""
    path = _existing_dir(data_path, "auto")
    names = set(os.listdir(path))
    from src.mindrecord_data import is_mindrecord_dir  # prepare_data.py's output (images.mindrecord*)
    if is_mindrecord_dir(names):
        return "mindrecord"
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

def _choose_split(requested, present):
    """(usage, description) for a dataset whose official splits on disk are `present` (a non-empty subset of
    ("train", "test")): the requested split when it is there, else the one split the directory holds."""
    if len(present) == 1:
        (only,) = present
        return only, only if requested == only else ONLY_SPLIT.format(only)
    return requested, requested


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
    batches = _cifar10_batches(root)
    present = [s for s, prefix in (("train", "data_batch"), ("test", "test_batch"))
               if any(b.startswith(prefix) for b in batches)]
    if not present:
        raise UserError(f"no CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin) in {root}: "
                        f"found only {', '.join(batches)}")
    usage, split = _choose_split(req.split, present)
    ds, _ = _ms()
    return _Reader(lambda **kw: ds.Cifar10Dataset(root, usage=usage, **kw), source_nc=3, root=root, split=split)


def _mnist(req):
    path = req.path
    present = []
    for split, (images, labels) in zip(("train", "test"), MNIST_FILES):
        have = [os.path.isfile(os.path.join(path, f)) for f in (images, labels)]
        if any(have) and not all(have):
            raise UserError(f"MNIST in {path} needs both {images} and {labels}")
        if all(have):
            present.append(split)
    if not present:
        gz = any(os.path.isfile(os.path.join(path, f + ".gz")) for pair in MNIST_FILES for f in pair)
        raise UserError(f"no MNIST idx files ({', '.join(MNIST_FILES[0])}) in {path}"
                        + ("; decompress the .gz files first (gunzip)" if gz else ""))
    usage, split = _choose_split(req.split, present)
    ds, _ = _ms()
    return _Reader(lambda **kw: ds.MnistDataset(path, usage=usage, **kw), source_nc=1, root=path, split=split)


def _celeba_first_image(attr_file):
    """Name of the first image in list_attr_celeba.txt (line 1: count, line 2: attribute names)."""
    with open(attr_file) as f:
        lines = [f.readline() for _ in range(3)]
    if not lines[0].strip().isdigit() or not lines[2].split():
        raise UserError(f"{attr_file} is not a CelebA attribute list (line 1: image count, line 2: attribute "
                        "names, then one '<image> <attributes>' line per image)")
    return lines[2].split()[0]


CELEBA_PARTITIONS = {"train": "0", "test": "2"}  # list_eval_partition.txt's codes (1 is the validation split)
CELEBA_PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")  # official / Kaggle


def _celeba_partition(images_dir, path):
    """The CelebA partition list nearest the images, or None: beside them, in their parent folder, in the dataset
    root or its Eval/ folder (the official download), as .txt or as Kaggle's .csv."""
    for folder in dict.fromkeys((images_dir, os.path.dirname(images_dir), path, os.path.join(path, "Eval"))):
        for name in CELEBA_PARTITION_FILES:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def _read_partition(partition_file):
    """{image file name: partition code} of list_eval_partition.txt ('<image> <0|1|2>' lines) or its .csv form
    (an 'image_id,partition' header, then '<image>,<0|1|2>' lines)."""
    parts = {}
    with open(partition_file) as f:
        for line in f:
            fields = line.replace(",", " ").split()
            if len(fields) == 2 and fields[1] in ("0", "1", "2"):
                parts[fields[0]] = fields[1]
    if not parts:
        raise UserError(f"{partition_file} is not a CelebA partition list ('<image> <0|1|2>' lines)")
    return parts


def _celeba(req):
    path = req.path
    ds, _ = _ms()
    # CelebADataset opens each image listed in list_attr_celeba.txt next to that file (MindSpore's documented layout),
    # and takes the split from list_eval_partition.txt there (usage="all" without it: it cannot split then).
    for root in (path, os.path.join(path, "img_align_celeba")):
        attr = os.path.join(root, "list_attr_celeba.txt")
        if os.path.isfile(attr) and os.path.isfile(os.path.join(root, _celeba_first_image(attr))):
            if os.path.isfile(os.path.join(root, "list_eval_partition.txt")):
                usage = split = req.split
            else:
                usage, split = "all", "all (no list_eval_partition.txt)"
            return _Reader(lambda decrypt=_tag_with_path, **kw: ds.CelebADataset(root, usage=usage, decrypt=decrypt,
                                                                                 **kw),
                           source_nc=3, encoded="tagged", root=root, label="attr", split=split)
    # The official download keeps the images in img_align_celeba/ (img_align_celeba/img_align_celeba/ on Kaggle),
    # away from list_attr_celeba.txt, where CelebADataset cannot find them. The attributes are not needed for a
    # GAN, so read that folder as a flat folder of images, keeping the split's files by the partition list.
    for images in (os.path.join(path, "img_align_celeba"), os.path.join(path, "img_align_celeba", "img_align_celeba")):
        if os.path.isdir(images) and _has_image(images):
            files = _list_images(images)
            partition_file = _celeba_partition(images, path)
            if partition_file is None:
                return _file_list_reader(files, images, "all (no list_eval_partition.txt)")
            if req.split != "all":
                parts = _read_partition(partition_file)
                files = [f for f in files if parts.get(os.path.basename(f)) == CELEBA_PARTITIONS[req.split]]
                if not files:
                    raise UserError(f"no CelebA {req.split} images in {images}: {partition_file} lists none of its "
                                    f"files with partition {CELEBA_PARTITIONS[req.split]}")
            return _file_list_reader(files, images, req.split)
    raise UserError(f"no CelebA images in {path}: expected list_attr_celeba.txt next to the images it lists, "
                    "or the images in img_align_celeba/")


LSUN_USAGE = {"train": "train", "test": "valid", "all": "all"}  # LSUNDataset's usage "valid" reads <category>_val/


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
    # LSUN's own test set has no categories; the per-category _val folders are its held-out images, so --split test
    # reads them. In the reader's terms the splits on disk are "train" (_train folders) and "test" (_val folders).
    present = [s for s, suffix in (("train", "_train"), ("test", "_val"))
               if any(suffix in os.path.basename(f) for f in folders)]
    usage, split = _choose_split(req.split, present)
    usage = LSUN_USAGE[usage]
    if split == "test":
        split = "val (LSUN's _val folders stand in for test)"
    elif split == ONLY_SPLIT.format("test"):
        split = ONLY_SPLIT.format("val")
    read = [f for f in folders if usage == "all" or ("_train" if usage == "train" else "_val") in os.path.basename(f)]
    ds, _ = _ms()
    # LSUNDataset has no decrypt hook to learn which file it read; a bad file is found on disk by size and hash.
    return _Reader(lambda **kw: ds.LSUNDataset(path, usage=usage, **kw), source_nc=3, encoded="bytes", root=path,
                   locate=lambda keys: _find_files(read, set(keys)), split=split)


def _numpy_slices(data, label=False):
    """open() for NumpySlicesDataset over `data`, always with one worker: slicing memory is trivial, and with more
    workers the underlying GeneratorDataset starts worker processes (about 5 s before the first batch). With
    label=True a second column "label" (zeros) comes with it."""
    ds, _ = _ms()
    columns = (data, np.zeros(len(data), np.int32)) if label else data
    names = ["image", "label"] if label else ["image"]
    return lambda **kw: ds.NumpySlicesDataset(columns, column_names=names, **dict(kw, num_parallel_workers=1))


def _file_list_reader(files, root, split=NO_SPLIT):
    # ImageFolderDataset needs class sub-folders. Pointed at the parent with class_indexing={folder: 0} it reads the
    # right files, but its get_dataset_size() still counts every sibling folder. A list of paths through
    # NumpySlicesDataset keeps the count, shuffling and sharding exact; the map reads and decodes the files.
    return _Reader(_numpy_slices(files, label=True), source_nc=3, encoded="path", root=root, split=split)


def _image_folder(req):
    """imagenet / folder / lfw: class sub-folders of images (ImageFolderDataset), or one flat folder of images."""
    path = req.path
    ds, _ = _ms()
    if _image_subdirs(path):
        # Images lying directly in `path` next to class folders are not read (ImageFolderDataset ignores them).
        return _Reader(lambda decrypt=_tag_with_path, **kw: ds.ImageFolderDataset(
                           path, extensions=list(IMAGE_EXTENSIONS), decrypt=decrypt, **kw),
                       source_nc=3, encoded="tagged", root=path)
    files = _list_images(path)
    if not files:
        raise UserError(f"no images ({' '.join(IMAGE_EXTENSIONS[::2])}) in {path} or its sub-folders")
    return _file_list_reader(files, path)


def _fake(req):
    """Seeded random images at the target size, in the requested channels (no split: NO_SPLIT)."""
    ds, _ = _ms()
    size, nc = req.image_size, req.nc or 3
    num = req.fake_size or FAKE_BATCHES * req.batch_size
    return _Reader(lambda **kw: ds.FakeImageDataset(num_images=num, image_size=(size, size, nc),
                                                    base_seed=req.seed, **kw), source_nc=nc)


def digits_arrays():
    """scikit-learn's 1,797 8x8 digits as uint8 0..255 (N, 8, 8, 1) images (values 0..16 scaled), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None],
            digits.target.astype(np.int64))


def digits_split(labels=None):
    """{"train": indices, "test": indices} into the digits (sorted): the fixed stratified hold-out, 1,347 / 450,
    drawn with DIGITS_SPLIT_SEED whatever the run's seed (src/labelled_data.py holds out the same ones)."""
    from sklearn.model_selection import train_test_split

    if labels is None:
        labels = digits_arrays()[1]
    train, test = train_test_split(np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels,
                                   random_state=DIGITS_SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


def _digits(req):
    """The built-in digits of the requested split (see digits_split), in load_digits order."""
    images, labels = digits_arrays()
    split = req.split if req else "all"
    if split != "all":
        images = images[digits_split(labels)[split]]
    return _Reader(_numpy_slices(images), source_nc=1, split=split)


def _mindrecord(req):
    """prepare_data.py's output: uint8 images stored at the training resolution (see src/mindrecord_data.py)."""
    from src.mindrecord_data import reader
    return reader(req.path, req.image_size)


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
    "mindrecord": _mindrecord,
}


# ---------------------------------------------------------------------------------------------------------------
# Decoding files, a bad one skipped and counted

_READ_ERROR = b"E"  # _tag_with_path: the file could not be read; the reason follows the path
_READ_OK = b"P"  # _tag_with_path: the file's bytes follow the path
_NOT_READ = b"S"  # _TopUp.tag_with_path: the file was not read (it seemed not to be needed); only its path is here


def _tag_with_path(path):
    """The `decrypt` hook of ImageFolderDataset and CelebADataset: called with each file's path, it returns the bytes
    the reader yields. Prefixing the path lets _Decoder name a bad file. Never raises (that would end the pipeline)."""
    try:
        with open(path, "rb") as f:
            return _READ_OK + os.fsencode(path) + b"\0" + f.read()
    except OSError as error:
        return _READ_ERROR + os.fsencode(path) + b"\0" + f"cannot read it: {error.strerror}".encode()


def _find_files(folders, keys):
    """{(size, sha1): path} for the files in `folders` matching those keys (one scan; only same-size files read)."""
    sizes, found = {size for size, _ in keys}, {}
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.stat().st_size in sizes:
                    key = (entry.stat().st_size, _sha1_file(entry.path))
                    if key in keys:
                        found.setdefault(key, entry.path)
    return found


def _sha1_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _decode(data):
    """uint8 HWC RGB pixels of an encoded image; raises if the bytes are not one complete image. Pillow is strict
    where libjpeg is not (a JPEG cut short decodes to grey rows there), and its errors are one readable line."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: keep the high byte, as OpenCV does
            return np.repeat((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _reason(error):
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image in a known format"
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


_SILENCE_PIL = []


def _silence_pil_warnings():
    """Pillow's warnings about odd files (palette transparency, huge images) are not for the training log."""
    if not _SILENCE_PIL:
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        _SILENCE_PIL.append(True)


class _Decoder:
    """Map op turning an undecoded "image" column into uint8 HWC pixels. `encoded` says what the column holds:
    "path" (a file path: read here), "tagged" (_tag_with_path's output) or "bytes" (a file's bytes, no name).
    Without bad_files a bad file raises ValueError naming it; with bad_files it returns (pixels, ok) and a bad file
    gives (a 1x1 placeholder, False) and is recorded, for the pipeline to filter out. With a _TopUp, a second
    input column says which pass a row is from: good images of the first pass are counted there, and images of the
    top-up pass skipped (like a bad file, but uncounted) once the first pass is known to fill the epoch."""

    def __init__(self, encoded, bad_files=None, top_up=None):
        self.encoded, self.bad_files, self.top_up = encoded, bad_files, top_up
        _silence_pil_warnings()

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return path, f.read(), None
        except OSError as error:
            return path, None, f"cannot read it: {error.strerror}"

    def _unpack(self, value):
        """(key naming the file, its bytes or None, reason it is bad or None)."""
        if self.encoded == "path":
            return self._read(str(value.item() if isinstance(value, np.ndarray) else value))
        data = np.asarray(value).tobytes()
        if self.encoded == "bytes":
            return (len(data), hashlib.sha1(data).hexdigest()), data, None
        path, _, rest = data[1:].partition(b"\0")
        if data[:1] == _READ_ERROR:
            return os.fsdecode(path), None, rest.decode(errors="replace")
        if data[:1] == _NOT_READ:
            return self._read(os.fsdecode(path))
        return os.fsdecode(path), rest, None

    def __call__(self, value, top_up_pass=None):
        first_pass = top_up_pass is None or not np.ravel(top_up_pass)[0]
        if self.top_up and not first_pass and self.top_up.enough():
            return np.zeros((1, 1, 3), np.uint8), np.array(False)
        key, data, reason = self._unpack(value)
        if reason is None:
            try:
                image = _decode(data)
                if self.top_up and first_pass:
                    self.top_up.count_good()
                return (image, np.array(True)) if self.bad_files else image
            except Exception as error:  # noqa: BLE001 - a decoder fed arbitrary bytes can fail in any way
                reason = _reason(error)
        if self.bad_files is None:
            name = key if isinstance(key, str) else f"a file of {key[0]} bytes"
            raise ValueError(f"bad image file {name}: {reason}")
        self.bad_files.add(key, reason)
        return np.zeros((1, 1, 3), np.uint8), np.array(False)


def _is_ok(ok):
    return bool(ok)


class _TopUp:
    """The epoch's images are the first `needed` good images of the shard read twice: the first pass, then the
    top-up pass (the same reader again, after it). For a top-up row the decoder asks enough(): once the first pass
    has decoded `needed` good images, every top-up image lies beyond them and is skipped undecoded; until then it
    is decoded. Either way the images kept (take(needed)) are the same, so the epoch depends on the seed alone,
    never on thread timing, and the top-up pass costs decoding only in epochs that need it. Reset at the start of
    every iteration over the pipeline (a MindSpore dataset callback on the decoder's map op)."""

    def __init__(self, needed):
        self.needed, self.good = needed, 0
        self._lock = threading.Lock()

    def count_good(self):
        with self._lock:
            self.good += 1

    def enough(self):
        return self.good >= self.needed

    def reset(self):
        with self._lock:
            self.good = 0

    def tag_with_path(self, path):
        """The top-up reader's decrypt hook: _tag_with_path, or only the path once the file seems not needed. (The
        reader may run ahead of the decoder's reset, so the decoder reads the file itself if it is needed after all.)"""
        return _NOT_READ + os.fsencode(path) + b"\0" if self.enough() else _tag_with_path(path)

    def callback(self):
        """A dataset callback that resets this at the start of each pass (each create_tuple_iterator)."""
        from mindspore.dataset.callback import DSCallback

        top_up = self

        class _Reset(DSCallback):
            def ds_epoch_begin(self, ds_run_context):
                top_up.reset()

        return _Reset()


def _decoded_twice(reader, source, options, bad_files, needed, workers):
    """The shard's good images, read twice (see _TopUp), bad files dropped and counted in bad_files."""
    import mindspore.dataset.transforms as transforms

    def marked(pass_source, top_up_pass):  # the label column becomes the pass number (labels are not needed)
        return pass_source.project(["image", reader.label]).map(
            operations=transforms.Fill(top_up_pass), input_columns=reader.label, output_columns="top_up_pass")

    top_up = _TopUp(needed)
    second = reader.open(**options, **({"decrypt": top_up.tag_with_path} if reader.encoded == "tagged" else {}))
    # Concatenated before decoding: the readers know their sizes, while a filtered pipeline is counted by running it.
    rows = marked(source, 0).concat(marked(second, 1))
    # Threads, not processes: the decoder records bad files in bad_files (Pillow decodes without the GIL).
    rows = rows.map(operations=_Decoder(reader.encoded, bad_files, top_up), input_columns=["image", "top_up_pass"],
                    output_columns=["image", "ok"], num_parallel_workers=workers, python_multiprocessing=False,
                    callbacks=[top_up.callback()])
    return rows.filter(predicate=_is_ok, input_columns=["ok"], num_parallel_workers=1).project(["image"])


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
    """The one useful line of a MindSpore pipeline error (they run to dozens of lines): for an error raised by
    Python code in the pipeline (e.g. _Decoder), that exception's message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if any(line.startswith("- Python Call Stack") for line in lines):
        raised = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception")) and ": " in line]
        if raised:
            return raised[-1].split(": ", 1)[1]
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
                   num_samples=None, fake_size=None, strict=False, bad_files=None, split="train"):
    """Returns (ds, info): batches of one column "image", float32 (batch_size, nc, image_size, image_size) in
    [-1, 1], and a DatasetInfo. nc=None keeps the source's channels (1 for mnist/digits, 3 otherwise).
    `split` (train, test or all) picks the part of a dataset with official splits; info.split says what was read
    (see the module docstring).
    Bad image files are skipped and counted in info.bad_files: a new BadFiles(strict), or `bad_files` (from the
    info of an earlier epoch) to keep counting there. Iterate with info.bad_files.iterate to act on them."""
    _check_options(name, image_size, batch_size, nc, num_parallel_workers, num_shards, shard_id, seed, num_samples,
                   fake_size, split)
    path = None
    if name not in BUILT_IN:
        path = _existing_dir(data_path, name)
        if name == "auto":
            name = detect_format(path)
    reader = _BUILDERS[name](_Request(path, image_size, nc, seed, batch_size, fake_size, split))

    ds, _ = _ms()
    ds.config.set_seed(seed)  # the readers' shuffle (and so which shard gets which image) draws from this seed
    # MindSpore rejects more workers than CPUs; a config written for a bigger machine should still run here.
    workers = min(num_parallel_workers, os.cpu_count() or 1)
    options = dict(shuffle=shuffle, num_samples=num_samples, num_shards=num_shards, shard_id=shard_id,
                   num_parallel_workers=workers)
    source = reader.open(**options)
    per_shard = _count(source, name, reader.root)
    whole = per_shard
    if num_shards is not None or num_samples is not None:
        whole = _count(reader.open(shuffle=False, num_parallel_workers=workers), name, reader.root)

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
    if reader.encoded:
        # Bad files are skipped, and the epoch topped up by a second pass (see _TopUp): a second reader rather than
        # repeat(), which warns every epoch that batches may mix epochs.
        pipeline = _decoded_twice(reader, source, options, bad_files, needed, workers)
    else:
        pipeline = source.project(["image"])  # drop labels: a GAN only needs the images
    pipeline = pipeline.map(operations=_transforms(image_size, reader.source_nc, out_nc),
                            input_columns="image", num_parallel_workers=workers)
    if reader.encoded:
        pipeline = pipeline.take(needed)
    pipeline = pipeline.batch(batch_size, drop_remainder=drop_remainder)

    info = DatasetInfo(name=name, nc=out_nc, num_images=whole, batches_per_epoch=batches,
                       source_nc=reader.source_nc, images_per_epoch=per_shard, data_path=reader.root,
                       split=reader.split, bad_files=bad_files)
    return pipeline, info
