"""One reader per on-disk format (MNIST's in mnist.py, MindRecord's in mindrecord.py), MindSpore's own dataset
readers where they fit: validate what is on disk, then return a Reader (src/data/source.py) whose
open(**sampler options) creates the MindSpore dataset.

Only one split is read: "train", "test" or "all", mapped onto each dataset's official split (CIFAR-10 and MNIST
files, CelebA's list_eval_partition.txt, LSUN's _train/_val folders, and for the built-in digits a fixed stratified
hold-out shared with src/data/labelled.py, so verify.py never classifies a digit D was trained on). A directory
holding only one split reads what it has; datasets without official splits (image folders, fake, MindRecord) are
read whole. Reader.split says what is actually read.
"""
import functools
import os

import numpy as np

from src.data import mindrecord, mnist
from src.data.bad_files import find_files, tag_with_path
from src.data.options import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, NO_SPLIT, ONLY_SPLIT
from src.data.source import Reader, choose_split, mindspore_dataset, numpy_slices
from src.errors import UserError

# MindSpore matches extensions case-sensitively, so list both spellings.
IMAGE_EXTENSIONS = tuple(e for ext in (".jpg", ".jpeg", ".png", ".bmp") for e in (ext, ext.upper()))
CIFAR10_BATCH_BYTES = 10000 * (1 + 32 * 32 * 3)  # Cifar10Dataset reads exactly 10,000 records from every batch file
# LSUNDataset only picks up folders whose names contain one of these categories plus "_train" or "_val".
LSUN_CATEGORIES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room", "dining_room", "kitchen",
                   "living_room", "restaurant", "tower")
FAKE_BATCHES = 10  # default size of the fake dataset, in batches


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


def existing_dir(data_path, name):
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


def cifar10_batches(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".bin") and "batch" in f)


def _cifar10_root(path):
    """The directory holding the CIFAR-10 binary batches: `path` itself or its cifar-10-batches-bin/."""
    for root in (path, os.path.join(path, "cifar-10-batches-bin")):
        if os.path.isdir(root) and cifar10_batches(root):
            return root
    return None


def _lsun_folders(path):
    return [d for d in _subdirs(path)
            if any(c + s in os.path.basename(d) for c in LSUN_CATEGORIES for s in ("_train", "_val"))]


def image_subdirs(path):
    return [d for d in _subdirs(path) if _has_image(d)]


def detect_format(data_path):
    """Return one of mindrecord / cifar10 / mnist / celeba / lsun / folder from what is on disk at data_path, checked
    in that order: mindrecord: prepare_data.py's images.mindrecord* files;
    cifar10: *batch*.bin files here or in cifar-10-batches-bin/ (or the unreadable python version, to explain it);
    mnist: train-/t10k- idx files, plain or .gz; celeba: list_attr_celeba.txt or img_align_celeba/;
    lsun: <category>_train / <category>_val folders; folder: images here or in sub-folders.
    Raises UserError if the path is missing, empty or holds none of these."""
    path = existing_dir(data_path, "auto")
    names = set(os.listdir(path))
    if mindrecord.is_mindrecord_dir(names):  # prepare_data.py's output (images.mindrecord*)
        return "mindrecord"
    if _cifar10_root(path) or "cifar-10-batches-py" in names:
        return "cifar10"
    if mnist.has_files(names):
        return "mnist"
    if "list_attr_celeba.txt" in names or "img_align_celeba" in names:
        return "celeba"
    if _lsun_folders(path):
        return "lsun"
    if image_subdirs(path) or _has_image(path):
        return "folder"
    raise UserError(f"nothing recognisable in {path}: expected CIFAR-10 binary batches (*.bin), MNIST idx files, "
                    "CelebA list_attr_celeba.txt, LSUN <category>_train folders, or images "
                    f"({' '.join(IMAGE_EXTENSIONS[::2])}) flat or in class sub-folders")


# ---------------------------------------------------------------------------------------------------------------
# One builder per reader. Each validates what it needs on disk, then returns a Reader.

def _cifar10(req):
    root = _cifar10_root(req.path)
    if root is None:
        hint = " (found the python version; MindSpore reads the binary version)" if os.path.isdir(
            os.path.join(req.path, "cifar-10-batches-py")) else ""
        raise UserError(f"no CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin) in {req.path}{hint}")
    for name in cifar10_batches(root):
        size = os.path.getsize(os.path.join(root, name))
        if size != CIFAR10_BATCH_BYTES:
            raise UserError(f"{os.path.join(root, name)} is {size} bytes, not a CIFAR-10 binary batch "
                            f"({CIFAR10_BATCH_BYTES} bytes: 10000 records of 1 label + 3072 pixel bytes)")
    batches = cifar10_batches(root)
    present = [s for s, prefix in (("train", "data_batch"), ("test", "test_batch"))
               if any(b.startswith(prefix) for b in batches)]
    if not present:
        raise UserError(f"no CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin) in {root}: "
                        f"found only {', '.join(batches)}")
    usage, split = choose_split(req.split, present)
    ds, _ = mindspore_dataset()
    return Reader(lambda **kw: ds.Cifar10Dataset(root, usage=usage, **kw), source_nc=3, root=root, split=split)


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
    ds, _ = mindspore_dataset()
    # CelebADataset opens each image listed in list_attr_celeba.txt next to that file (MindSpore's documented layout),
    # and takes the split from list_eval_partition.txt there (usage="all" without it: it cannot split then).
    for root in (path, os.path.join(path, "img_align_celeba")):
        attr = os.path.join(root, "list_attr_celeba.txt")
        if os.path.isfile(attr) and os.path.isfile(os.path.join(root, _celeba_first_image(attr))):
            if os.path.isfile(os.path.join(root, "list_eval_partition.txt")):
                usage = split = req.split
            else:
                usage, split = "all", "all (no list_eval_partition.txt)"
            return Reader(lambda decrypt=tag_with_path, **kw: ds.CelebADataset(root, usage=usage, decrypt=decrypt,
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
    usage, split = choose_split(req.split, present)
    usage = LSUN_USAGE[usage]
    if split == "test":
        split = "val (LSUN's _val folders stand in for test)"
    elif split == ONLY_SPLIT.format("test"):
        split = ONLY_SPLIT.format("val")
    read = [f for f in folders if usage == "all" or ("_train" if usage == "train" else "_val") in os.path.basename(f)]
    ds, _ = mindspore_dataset()
    # LSUNDataset has no decrypt hook to learn which file it read; a bad file is found on disk by size and hash.
    return Reader(lambda **kw: ds.LSUNDataset(path, usage=usage, **kw), source_nc=3, encoded="bytes", root=path,
                   locate=lambda keys: find_files(read, set(keys)), split=split)


def _file_list_reader(files, root, split=NO_SPLIT):
    # ImageFolderDataset needs class sub-folders. Pointed at the parent with class_indexing={folder: 0} it reads the
    # right files, but its get_dataset_size() still counts every sibling folder. A list of paths through
    # NumpySlicesDataset keeps the count, shuffling and sharding exact; the map reads and decodes the files.
    return Reader(numpy_slices(files, np.zeros(len(files), np.int32)), source_nc=3, encoded="path", root=root,
                  split=split)


def _image_folder(req):
    """imagenet / folder / lfw: class sub-folders of images (ImageFolderDataset), or one flat folder of images."""
    path = req.path
    ds, _ = mindspore_dataset()
    if image_subdirs(path):
        # Images lying directly in `path` next to class folders are not read (ImageFolderDataset ignores them).
        return Reader(lambda decrypt=tag_with_path, **kw: ds.ImageFolderDataset(
                           path, extensions=list(IMAGE_EXTENSIONS), decrypt=decrypt, **kw),
                       source_nc=3, encoded="tagged", root=path)
    files = _list_images(path)
    if not files:
        raise UserError(f"no images ({' '.join(IMAGE_EXTENSIONS[::2])}) in {path} or its sub-folders")
    return _file_list_reader(files, path)


def _fake(req):
    """Seeded random images at the target size, in the requested channels (no split: NO_SPLIT)."""
    ds, _ = mindspore_dataset()
    size, nc = req.image_size, req.nc or 3
    num = req.fake_size or FAKE_BATCHES * req.batch_size
    return Reader(lambda **kw: ds.FakeImageDataset(num_images=num, image_size=(size, size, nc),
                                                    base_seed=req.seed, **kw), source_nc=nc)


@functools.cache  # every training epoch opens the digits again
def digits_arrays():
    """scikit-learn's 1,797 8x8 digits (load_digits) as uint8 0..255 (N, 8, 8, 1) images (values 0..16 scaled),
    and their int64 labels. Read-only: the arrays are shared by every caller in the process."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@functools.cache
def digits_split():
    """{"train": indices, "test": indices} into the digits (sorted): the fixed stratified hold-out, 1,347 / 450,
    drawn by train_test_split with DIGITS_SPLIT_SEED whatever the run's seed (src/data/labelled.py holds out the
    same ones). Drawn once per process; read-only."""
    from sklearn.model_selection import train_test_split

    labels = digits_arrays()[1]
    train, test = train_test_split(np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels,
                                   random_state=DIGITS_SPLIT_SEED)
    split = {"train": np.sort(train), "test": np.sort(test)}
    for indices in split.values():
        indices.flags.writeable = False
    return split


def _digits(req):
    """The built-in digits of the requested split (see digits_split), in load_digits order."""
    images, _ = digits_arrays()
    split = req.split if req else "all"
    if split != "all":
        images = images[digits_split()[split]]
    return Reader(numpy_slices(images), source_nc=1, split=split, pixels=images)


def _mindrecord(req):
    """prepare_data.py's output: uint8 images stored at the training resolution (see src/data/mindrecord.py)."""
    return mindrecord.reader(req.path, req.image_size)


READERS = {
    "imagenet": _image_folder,
    "folder": _image_folder,
    "lfw": _image_folder,
    "cifar10": _cifar10,
    "mnist": mnist.reader,
    "celeba": _celeba,
    "lsun": _lsun,
    "fake": _fake,
    "digits": _digits,
    "mindrecord": _mindrecord,
}


def open_reader(name, request):
    """The Reader of dataset `name` (one of options.DATASETS but "auto") for a Request."""
    return READERS[name](request)
