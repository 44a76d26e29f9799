"""Labelled images for the representation test (verify.py): train and test splits as numpy arrays.

`load_splits(name, data_path, image_size, nc)` returns ({"train": (x, y), "test": (x, y)}, note): x float32
(N, nc, S, S) in [-1, 1], exactly what train.py feeds D (the same MindSpore readers and transform list as
src/dataset.py), y int64 class labels. CIFAR-10 and MNIST use their official train/test files when both are there,
and digits the fixed hold-out that training leaves out too (src/data/readers.py's digits_split, DIGITS_SPLIT_SEED, never
the seed given here), so the test images are ones D never saw. A class-folder dataset, or a CIFAR-10/MNIST directory
holding only one of the splits, is split here, stratified and seeded. `note` says which split was used.
"""
import os

import numpy as np

from src.data.options import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION
from src.data import mnist
from src.data.readers import cifar10_batches, digits_arrays, digits_split, existing_dir, image_subdirs, open_reader
from src.data.source import Request, mindspore_dataset, mindspore_reason
from src.data.transforms import pixel_transforms
from src.errors import UserError

NAMES = ("cifar10", "mnist", "folder", "digits")
TEST_FRACTION = DIGITS_TEST_FRACTION  # of a dataset without an official test split (as for digits)
READ_BATCH = 256


def _read(source, reader, image_size, nc, name, root=None):
    """All (image, label) rows of a MindSpore dataset, in order, through the training transforms."""
    root = root or reader.root
    workers = min(2, os.cpu_count() or 1)
    operations = reader.first_ops + pixel_transforms(image_size, reader.source_nc, nc)
    pipeline = source.project(["image", "label"]).map(operations=operations, input_columns="image",
                                                      num_parallel_workers=workers)
    images, labels = [], []
    try:
        for image, label in pipeline.batch(READ_BATCH).create_tuple_iterator(output_numpy=True):
            images.append(image)
            labels.append(label)
    except RuntimeError as error:
        raise UserError(f"cannot read {name} data in {root}: {mindspore_reason(error)}") from None
    if not images:
        raise UserError(f"{name} in {root} has no images")
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int64)


def _split_note(name, seed, why=""):
    return f"{name}: {why}stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} train/test split, seed {seed}"


def _split(images, labels, seed, test_fraction=TEST_FRACTION):
    """A seeded split keeping each class's share in both parts."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    if np.any((counts > 0) & (counts < 2)):
        raise UserError("every class needs at least 2 images to be split into train and test")
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=test_fraction,
                                                        stratify=labels, random_state=seed)
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def _digits(image_size, nc):
    # All 1,797 images, in load_digits order.
    reader = open_reader("digits", Request(None, image_size, nc, 0, 1, None, "all"))
    _, labels = digits_arrays()
    label_ds = mindspore_dataset()[0].NumpySlicesDataset(labels, column_names=["label"], shuffle=False)
    images, _ = _read(reader.open(shuffle=False).zip(label_ds), reader, image_size, nc, "digits", "scikit-learn")
    splits = {part: (images[index], labels[index]) for part, index in digits_split().items()}
    note = (f"digits: the fixed stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} train/test split "
            f"(seed {DIGITS_SPLIT_SEED}) that training holds out too")
    return splits, note


def _official_or_split(name, open_usage, has_split, reader, image_size, nc, seed):
    """Official train/test readers when both splits are on disk, else one reader over all and a seeded split."""
    if has_split:
        splits = {usage: _read(open_usage(usage), reader, image_size, nc, name) for usage in ("train", "test")}
        return splits, f"{name}: official train/test split"
    images, labels = _read(reader.open(shuffle=False), reader, image_size, nc, name)
    why = "no official train/test pair on disk; " if open_usage else ""
    return _split(images, labels, seed), _split_note(name, seed, why)


def load_splits(name, data_path, image_size=32, nc=3, seed=0):
    """({"train": (x, y), "test": (x, y)}, note) for dataset `name`; see the module docstring."""
    if name not in NAMES:
        raise UserError(f"verify reads labelled datasets: one of {', '.join(NAMES)}, not '{name}'")
    if name == "digits":
        return _digits(image_size, nc)
    path = existing_dir(data_path, name)
    request = Request(path, image_size, nc, seed, 1, None, "all")  # reader.open(): every image on disk
    ds, _ = mindspore_dataset()
    if name == "cifar10":
        reader = open_reader("cifar10", request)  # validates the batch files
        batches = cifar10_batches(reader.root)
        has_split = "test_batch.bin" in batches and any(b.startswith("data_batch") for b in batches)
        return _official_or_split(name, lambda usage: ds.Cifar10Dataset(reader.root, usage=usage, shuffle=False),
                                  has_split, reader, image_size, nc, seed)
    if name == "mnist":
        reader = open_reader("mnist", request)  # validates the idx files
        files = mnist.split_files(path)
        return _official_or_split(name, lambda usage: mnist.opener(path, files, usage)(shuffle=False),
                                  len(files) == 2, reader, image_size, nc, seed)
    if not image_subdirs(path):
        raise UserError(f"verify needs labelled images: class sub-folders of images in {path} "
                        "(the folder name is the label)")
    reader = open_reader("folder", request)
    return _official_or_split(name, None, False, reader, image_size, nc, seed)
