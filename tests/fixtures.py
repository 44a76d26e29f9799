"""Tiny datasets in their real on-disk formats, for tests. Each writer takes a directory and returns it.

Images are described by an RGB triple or a function (index -> uint8 HWC array), so a test knows what to expect.
"""
import os
import struct

import numpy as np
from PIL import Image

CIFAR10_RECORDS = 10000  # MindSpore's Cifar10Dataset reads exactly this many records from every batch file


def _ensure(directory):
    os.makedirs(directory, exist_ok=True)
    return str(directory)


def solid(rgb, height=32, width=32):
    """An image filled with one colour: uint8 (height, width, 3)."""
    return np.broadcast_to(np.asarray(rgb, np.uint8), (height, width, 3)).copy()


def write_cifar10(directory, files=("data_batch_1",), rgb=(255, 0, 128), subdir=None):
    """CIFAR-10 binary batches: 10,000 records of <1 label byte><1024 R><1024 G><1024 B> per file (30,730,000 bytes),
    every image the colour `rgb`, plus batches.meta.txt. With subdir (e.g. 'cifar-10-batches-bin') the files go
    there. A real batch has 10,000 images and MindSpore insists on it, so each file is ~31 MB."""
    root = _ensure(os.path.join(directory, subdir) if subdir else directory)
    record = np.concatenate([[0], np.repeat(np.asarray(rgb, np.uint8), 1024)]).astype(np.uint8)
    records = np.tile(record, (CIFAR10_RECORDS, 1))
    records[:, 0] = np.arange(CIFAR10_RECORDS) % 10  # labels
    for name in files:
        records.tofile(os.path.join(root, name + ".bin"))
    with open(os.path.join(root, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
                + "\n")
    return str(directory)


def mnist_half_white(_index):
    """A 28x28 digit stand-in: left half white (255), right half black."""
    image = np.zeros((28, 28), np.uint8)
    image[:, :14] = 255
    return image


def mnist_black(_index):
    """An all-black 28x28 image (to tell test images from mnist_half_white training images)."""
    return np.zeros((28, 28), np.uint8)


def write_mnist(directory, n_train=4, n_test=2, image=mnist_half_white, gzip_only=False, test_image=None):
    """The standard idx files (uncompressed, big-endian headers): magic 2051 + count + 28 + 28 for images,
    magic 2049 + count for labels; a split with count 0 is left out. image(i) gives the 28x28 uint8 training image
    i, test_image(i) (default: image) test image i."""
    root = _ensure(directory)
    for prefix, count, make in (("train", n_train, image), ("t10k", n_test, test_image or image)):
        if not count:
            continue
        images = np.stack([make(i) for i in range(count)]).astype(np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        files = {f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes(),
                 f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 2049, count) + labels.tobytes()}
        for name, data in files.items():
            if gzip_only:
                import gzip
                with gzip.open(os.path.join(root, name + ".gz"), "wb") as f:
                    f.write(data)
            else:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(data)
    return root


def write_images(directory, count, image=(255, 255, 255), ext=".png", prefix="img"):
    """`count` image files in one folder. image: an RGB triple (32x32 images), a uint8 HWC array, or a function
    index -> uint8 HWC (or HW) array."""
    root = _ensure(directory)
    for i in range(count):
        array = image(i) if callable(image) else np.asarray(image, np.uint8)
        array = solid(array) if array.ndim == 1 else array
        Image.fromarray(array).save(os.path.join(root, f"{prefix}{i:04d}{ext}"), quality=95)
    return root


def write_image_folder(directory, classes=("a", "b"), per_class=3, image=(255, 255, 255), ext=".png"):
    """Class sub-folders of images (ImageNet / LFW layout)."""
    for name in classes:
        write_images(os.path.join(directory, name), per_class, image, ext)
    return str(directory)


def write_celeba(directory, count=4, image=(255, 255, 255), layout="mindspore"):
    """CelebA: list_attr_celeba.txt (count, attribute names, '<file> <+1/-1 ...>' lines), list_eval_partition.txt,
    and `count` 178x218 JPEGs. layout='mindspore': images next to the attribute list (what CelebADataset reads);
    layout='download': images in img_align_celeba/ as the official archive unpacks."""
    root = _ensure(directory)
    images = _ensure(os.path.join(root, "img_align_celeba")) if layout == "download" else root
    attributes = ["5_o_Clock_Shadow", "Smiling", "Young"]
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    for name in names:
        Image.fromarray(solid(image, 218, 178) if not callable(image) else image(name)).save(
            os.path.join(images, name), quality=95)
    with open(os.path.join(root, "list_attr_celeba.txt"), "w") as f:
        f.write(f"{count}\n{' '.join(attributes)}\n")
        for i, name in enumerate(names):
            f.write(name + "".join(f" {1 if (i + j) % 2 else -1:2d}" for j in range(len(attributes))) + "\n")
    with open(os.path.join(root, "list_eval_partition.txt"), "w") as f:
        f.writelines(f"{name} {i % 3}\n" for i, name in enumerate(names))
    return root


def write_lsun(directory, folders=(("bedroom_train", 4), ("bedroom_val", 2)), image=(255, 255, 255)):
    """LSUN as MindSpore's LSUNDataset reads it: <category>_train/ and <category>_val/ folders of JPEGs."""
    root = _ensure(directory)
    for name, count in folders:
        write_images(os.path.join(root, name), count, solid(image, 48, 64) if not callable(image) else image,
                     ext=".jpg")
    return root
