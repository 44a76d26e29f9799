"""src/dataset.py: auto-detection of a dataset's format, sharding, shuffling and counting, and bad input."""
import gzip
import os
import struct

import numpy as np
import pytest

from src.data import DATASETS, detect_format
from src.dataset import create_dataset
from src.errors import UserError
from tests import fixtures as fx
from tests.dataset_checks import all_batches, check_batch, first_batch, gray_levels, ids_of
from tests.dataset_checks import cifar_dir  # noqa: F401 - a pytest fixture


# --- auto-detection ------------------------------------------------------------------------------------------------

@pytest.fixture
def cifar_in_subdir(tmp_path):
    return fx.write_cifar10(tmp_path / "cifar", subdir="cifar-10-batches-bin")


AUTO_CASES = {
    "cifar10": None,  # uses the cifar_in_subdir fixture
    "mnist": lambda d: fx.write_mnist(d),
    "celeba": lambda d: fx.write_celeba(d),
    "celeba-download": lambda d: fx.write_celeba(d, layout="download"),
    "lsun": lambda d: fx.write_lsun(d),
    "folder-flat": lambda d: fx.write_images(d, 2),
    "folder-classes": lambda d: fx.write_image_folder(d, per_class=1),
}


@pytest.mark.parametrize("case", list(AUTO_CASES))
def test_auto_detection(tmp_path, request, case):
    root = request.getfixturevalue("cifar_in_subdir") if AUTO_CASES[case] is None else AUTO_CASES[case](
        tmp_path / case)
    expected = case.split("-")[0]
    assert detect_format(root) == expected
    ds, info = create_dataset("auto", root, batch_size=2, shuffle=False)
    assert info.name == expected
    check_batch(first_batch(ds), 2, 1 if expected == "mnist" else 3)


# --- sharding, shuffling, counting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["flat", "classes"])
def test_two_shards_see_disjoint_halves(tmp_path, layout):
    if layout == "flat":
        root = fx.write_images(tmp_path / "data", 8, gray_levels)
    else:  # 4 + 4 images in two class folders, distinct levels across both
        root = str(tmp_path / "data")
        fx.write_images(os.path.join(root, "a"), 4, gray_levels)
        fx.write_images(os.path.join(root, "b"), 4, lambda i: gray_levels(i + 4))
    seen = []
    for shard in (0, 1):
        ds, info = create_dataset("folder", root, batch_size=2, num_shards=2, shard_id=shard, seed=5)
        assert (info.num_images, info.images_per_epoch, info.batches_per_epoch) == (8, 4, 2)
        assert ds.get_dataset_size() == 2
        seen.append([i for batch in all_batches(ds) for i in ids_of(batch)])
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(8))


def test_digits_shards_halve_the_batches():
    _, whole = create_dataset("digits", batch_size=8)
    _, shard = create_dataset("digits", batch_size=8, num_shards=2, shard_id=1)
    assert shard.num_images == 1347 and shard.images_per_epoch == 674  # MindSpore pads the last shard
    assert shard.batches_per_epoch == 674 // 8 == whole.batches_per_epoch // 2


@pytest.mark.parametrize("options", [dict(), dict(num_shards=2, shard_id=1), dict(num_shards=3, shard_id=2),
                                     dict(num_samples=100), dict(num_shards=2, shard_id=0, num_samples=300)])
def test_digits_epochs_from_memory_match_the_row_pipeline(options):
    """The digits are batched from memory (src/data/in_memory.py): each epoch holds as many batches as MindSpore's own
    sampler counts, of the same transformed images, reshuffled by the seed; the shards split each epoch."""
    from src.data import digits_arrays, digits_split, mindspore_dataset, pixel_transforms

    ds, info = create_dataset("digits", batch_size=8, seed=3, **options)
    batches = all_batches(ds)
    assert len(batches) == info.batches_per_epoch == info.images_per_epoch // 8
    assert ds.get_col_names() == ["image"] and all(b.shape == (8, 1, 32, 32) for b in batches)
    # The same images as the per-row pipeline over the same digits (every batch image is one of them).
    mds, _ = mindspore_dataset()
    images = digits_arrays()[0][digits_split()["train"]]
    rows = mds.NumpySlicesDataset(images, column_names=["image"], shuffle=False).map(pixel_transforms(32, 1, 1))
    reference = {row[0].tobytes() for row in rows.create_tuple_iterator(num_epochs=1, output_numpy=True)}
    assert all(image.tobytes() in reference for batch in batches for image in batch)
    assert np.array_equal(first_batch(create_dataset("digits", batch_size=8, seed=3, **options)[0]), batches[0])
    assert not np.array_equal(first_batch(create_dataset("digits", batch_size=8, seed=4, **options)[0]), batches[0])


def test_digits_shards_are_disjoint_and_cover_the_epoch():
    seen = []
    for shard_id in range(2):
        ds, _ = create_dataset("digits", batch_size=1, seed=5, num_shards=2, shard_id=shard_id)
        seen.append([b.tobytes() for b in all_batches(ds)])
    whole = [b.tobytes() for b in all_batches(create_dataset("digits", batch_size=1, seed=5)[0])]
    assert len(seen[0]) == len(seen[1]) == 674  # 1,347 padded to 1,348 by wrapping, as MindSpore pads
    assert set(seen[0]) | set(seen[1]) == set(whole)
    assert len(set(seen[0]) & set(seen[1])) <= 1 + (len(whole) - len(set(whole)))  # only the padding repeats


def test_shuffle_is_seeded(tmp_path):
    root = fx.write_images(tmp_path / "data", 8, gray_levels)

    def order(seed, shuffle=True):
        ds, _ = create_dataset("folder", root, batch_size=8, seed=seed, shuffle=shuffle)
        return ids_of(first_batch(ds))

    assert order(0, shuffle=False) == list(range(8))
    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(8))


@pytest.mark.parametrize("drop_remainder, batches", [(True, 3), (False, 4)])
def test_batches_per_epoch_matches_the_pipeline(tmp_path, drop_remainder, batches):
    root = fx.write_images(tmp_path / "data", 7)
    ds, info = create_dataset("folder", root, batch_size=2, drop_remainder=drop_remainder)
    assert info.batches_per_epoch == batches == ds.get_dataset_size() == len(all_batches(ds))


def test_num_samples_limits_the_epoch(tmp_path):
    root = fx.write_images(tmp_path / "data", 8)
    ds, info = create_dataset("folder", root, batch_size=2, num_samples=4)
    assert (info.num_images, info.images_per_epoch, info.batches_per_epoch) == (8, 4, 2)
    assert len(all_batches(ds)) == 2


def test_only_the_image_column_is_kept(cifar_dir):
    ds, _ = create_dataset("cifar10", cifar_dir, batch_size=2)
    assert ds.get_col_names() == ["image"]


# --- bad input -----------------------------------------------------------------------------------------------------

def raises(match, *args, **kwargs):
    with pytest.raises(UserError, match=match) as caught:
        create_dataset(*args, **kwargs)
    assert "\n" not in str(caught.value)  # one line for the command line
    return str(caught.value)


def test_unknown_name_lists_the_choices():
    message = raises("unknown dataset 'svhn'", "svhn", "/tmp")
    assert all(name in message for name in DATASETS)


@pytest.mark.parametrize("kwargs, match", [
    (dict(nc=2), "nc must be 1 or 3"),
    (dict(image_size=48), "image size 48 .*32, 64"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(num_parallel_workers=0), "num_parallel_workers"),
    (dict(seed=-1), "seed"),
    (dict(num_shards=2), "num_shards and shard_id"),
    (dict(num_shards=2, shard_id=2), r"shard_id must be in 0\.\.1"),
    (dict(fake_size=0), "fake_size"),
])
def test_bad_options(kwargs, match):
    raises(match, "fake", **kwargs)


def test_options_are_checked_before_the_path():
    raises("nc must be 1 or 3", "cifar10", "/no/such/dir", nc=2)


def test_file_dataset_needs_a_data_path():
    raises("'cifar10' needs a data_path", "cifar10")


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    raises(f"{missing} does not exist", "folder", str(missing))


def test_path_is_a_file(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    raises("is not a directory", "folder", str(path))


@pytest.mark.parametrize("name", ["folder", "auto", "cifar10"])
def test_empty_directory(tmp_path, name):
    raises(f"{tmp_path} is empty", name, str(tmp_path))


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    raises("no images", "folder", str(tmp_path))
    raises("nothing recognisable", "auto", str(tmp_path))
    with pytest.raises(UserError, match="nothing recognisable"):
        detect_format(str(tmp_path))


def test_fewer_images_than_one_batch(tmp_path):
    root = fx.write_images(tmp_path / "data", 3)
    raises("has 3 images, fewer than one batch of 4", "folder", root, batch_size=4)
    _, info = create_dataset("folder", root, batch_size=4, drop_remainder=False)  # a partial batch is fine
    assert info.batches_per_epoch == 1


def test_fewer_images_than_one_batch_per_shard(tmp_path):
    root = fx.write_images(tmp_path / "data", 6)
    raises(r"has 6 images \(3 per shard\), fewer than one batch of 4", "folder", root, batch_size=4,
           num_shards=2, shard_id=0)


def test_fewer_images_than_one_batch_with_num_samples(tmp_path):
    root = fx.write_images(tmp_path / "data", 8)
    raises(r"has 8 images \(3 with num_samples\), fewer than one batch of 4", "folder", root, batch_size=4,
           num_samples=3)


def test_digits_smaller_than_the_batch():
    raises(r"digits \(split train\) has 1347 images, fewer than one batch of 2048", "digits", batch_size=2048)


def test_unknown_split_lists_the_choices():
    raises("unknown split 'valid'; choose one of: train, test, all", "digits", split="valid")


def test_cifar10_wrong_file_size(tmp_path):
    (tmp_path / "data_batch_1.bin").write_bytes(bytes(3073 * 10))
    raises("30730 bytes, not a CIFAR-10 binary batch", "cifar10", str(tmp_path))


def test_cifar10_python_version(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"pickle")
    assert detect_format(str(tmp_path)) == "cifar10"
    raises("python version", "auto", str(tmp_path))


@pytest.mark.parametrize("split, count", [("train", 4), ("test", 2), ("all", 6)])
def test_mnist_gzipped_idx_files_read_as_the_uncompressed_ones(tmp_path, split, count):
    plain = fx.write_mnist(tmp_path / "plain", n_train=4, n_test=2, test_image=fx.mnist_black)
    gzipped = fx.write_mnist(tmp_path / "gz", n_train=4, n_test=2, test_image=fx.mnist_black, gzip_only=True)
    assert sorted(os.listdir(gzipped)) == sorted(f + ".gz" for f in os.listdir(plain))
    read = {}
    for root in (plain, gzipped):
        ds, info = create_dataset("auto", root, batch_size=1, shuffle=False, split=split)
        assert (info.name, info.source_nc, info.num_images, info.split) == ("mnist", 1, count, split)
        read[root] = np.concatenate(all_batches(ds))
    np.testing.assert_array_equal(read[gzipped], read[plain])


def test_mnist_labelled_splits_from_gzipped_files_equal_the_uncompressed_ones(tmp_path):
    from src.data.labelled import load_splits

    def image(i):
        return np.full((28, 28), 20 * i, np.uint8)

    plain = fx.write_mnist(tmp_path / "plain", n_train=10, n_test=10, image=image)
    gzipped = fx.write_mnist(tmp_path / "gz", n_train=10, n_test=10, image=image, gzip_only=True)
    (a, note), (b, _) = (load_splits("mnist", root, image_size=32, nc=1) for root in (plain, gzipped))
    assert note == "mnist: official train/test split"
    for part in ("train", "test"):
        np.testing.assert_array_equal(a[part][0], b[part][0])
        np.testing.assert_array_equal(a[part][1], b[part][1])
        np.testing.assert_array_equal(b[part][1], np.arange(10))


def test_mnist_damaged_gzipped_file_is_one_clear_error(tmp_path):
    root = fx.write_mnist(tmp_path / "mnist", n_test=0, gzip_only=True)
    images = os.path.join(root, "train-images-idx3-ubyte.gz")
    with open(images, "rb") as f:
        data = f.read()
    with open(images, "wb") as f:
        f.write(data[:len(data) // 2])
    raises("cannot read " + images, "mnist", root)
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">IIII", 2049, 4, 28, 28) + bytes(4 * 28 * 28))  # a labels magic number
    raises("is not an MNIST idx file", "mnist", root)
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">IIII", 2051, 5, 28, 28) + bytes(4 * 28 * 28))  # one image short
    raises("holds 3136 bytes after its header, not 3920", "mnist", root)


def test_mnist_missing_labels(tmp_path):
    root = fx.write_mnist(tmp_path / "mnist", n_test=0)
    os.remove(os.path.join(root, "train-labels-idx1-ubyte"))
    raises("needs both train-images-idx3-ubyte and train-labels-idx1-ubyte", "mnist", root)


def test_mnist_corrupt_header_is_a_user_error(tmp_path):
    root = fx.write_mnist(tmp_path / "mnist")
    with open(os.path.join(root, "train-images-idx3-ubyte"), "r+b") as f:
        f.write(b"\0\0\0\0")
    raises("cannot read mnist data in .*should be 2051", "mnist", root)


def test_celeba_bad_attribute_file(tmp_path):
    (tmp_path / "list_attr_celeba.txt").write_text("not a count\n")
    raises("not a CelebA attribute list", "celeba", str(tmp_path))


def test_celeba_without_images(tmp_path):
    root = fx.write_celeba(tmp_path / "celeba", count=2)
    for name in os.listdir(root):
        if name.endswith(".jpg"):
            os.remove(os.path.join(root, name))
    raises("no CelebA images", "celeba", root)


def test_lsun_lmdb_folders_are_explained(tmp_path):
    lmdb = tmp_path / "bedroom_train_lmdb"
    lmdb.mkdir()
    (lmdb / "data.mdb").write_bytes(b"\0" * 16)
    (lmdb / "lock.mdb").write_bytes(b"\0" * 16)
    assert detect_format(str(tmp_path)) == "lsun"
    raises("is an lmdb database", "lsun", str(tmp_path))


def test_lsun_without_category_folders(tmp_path):
    fx.write_images(tmp_path / "pictures", 2)
    raises("no LSUN folders", "lsun", str(tmp_path))
