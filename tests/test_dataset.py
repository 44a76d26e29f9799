"""src/dataset.py: every reader on tiny fixtures in the real on-disk formats (written by tests/fixtures.py)."""
import gzip
import json
import os
import struct

import numpy as np
import pytest

from src.data import DATASETS, NO_SPLIT, detect_format
from src.dataset import create_dataset
from src.errors import UserError
from tests import fixtures as fx
from tests.cli import check, run_python, train

STEP = 1 / 127.5  # one uint8 level after scaling to [-1, 1]


def level(value):
    """A uint8 value as the pipeline scales it."""
    return value / 127.5 - 1.0


def all_batches(ds):
    return [b[0] for b in ds.create_tuple_iterator(output_numpy=True, num_epochs=1)]


def first_batch(ds):
    return next(ds.create_tuple_iterator(output_numpy=True, num_epochs=1))[0]


def check_batch(batch, batch_size, nc, image_size=32):
    assert batch.shape == (batch_size, nc, image_size, image_size)
    assert batch.dtype == np.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0


CIFAR_TRAIN_RGB, CIFAR_TEST_RGB = (255, 0, 128), (0, 255, 0)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    # A train batch of (R, G, B) = (255, 0, 128) images and a test batch of green ones, 10,000 images each.
    root = fx.write_cifar10(tmp_path_factory.mktemp("cifar"), files=("data_batch_1",), rgb=CIFAR_TRAIN_RGB)
    return fx.write_cifar10(root, files=("test_batch",), rgb=CIFAR_TEST_RGB)


@pytest.fixture
def mnist_dir(tmp_path):
    # 4 training images (left half white), 2 test images (black)
    return fx.write_mnist(tmp_path / "mnist", n_train=4, n_test=2, test_image=fx.mnist_black)


def gray_levels(i):
    """Image i is a flat grey of level 10 + 30 * i, so a batch says which images it holds."""
    return fx.solid((10 + 30 * i,) * 3)


def ids_of(batch):
    """Image indices (see gray_levels) of a batch."""
    return [int(round(((x.mean() + 1) * 127.5 - 10) / 30)) for x in batch]


def test_importing_the_module_does_not_load_mindspore():
    # src/cpu/device.py must set oneDNN variables before MindSpore loads; DATASETS and detect_format work without it.
    code = "import sys, src.dataset; assert 'mindspore' not in sys.modules"
    check(run_python(code))


# --- one test per reader -----------------------------------------------------------------------------------------

def test_cifar10_reads_the_training_batches(cifar_dir):
    ds, info = create_dataset("cifar10", cifar_dir, batch_size=4, shuffle=False)
    assert (info.name, info.nc, info.source_nc, info.num_images, info.split) == ("cifar10", 3, 3, 10000, "train")
    assert info.batches_per_epoch == 2500 == ds.get_dataset_size()
    batch = first_batch(ds)
    check_batch(batch, 4, 3)
    np.testing.assert_allclose(batch[:, 0], 1.0)
    np.testing.assert_allclose(batch[:, 1], -1.0)
    np.testing.assert_allclose(batch[:, 2], level(128), atol=1e-6)


def test_cifar10_at_64px_in_grayscale(cifar_dir):
    ds, info = create_dataset("cifar10", cifar_dir, image_size=64, batch_size=2, nc=1, shuffle=False)
    assert (info.nc, info.source_nc) == (1, 3)
    batch = first_batch(ds)
    check_batch(batch, 2, 1, 64)
    # OpenCV's RGB -> gray: 0.299 R + 0.587 G + 0.114 B = 90.8
    np.testing.assert_allclose(batch, level(0.299 * 255 + 0.114 * 128), atol=STEP)


def test_mnist_reads_the_training_files_and_upscales_28_to_32(mnist_dir):
    ds, info = create_dataset("mnist", mnist_dir, batch_size=2, shuffle=False)
    assert (info.name, info.nc, info.source_nc, info.num_images, info.batches_per_epoch) == ("mnist", 1, 1, 4, 2)
    assert info.split == "train"
    batches = all_batches(ds)
    assert len(batches) == 2
    for batch in batches:  # training images only: no black test image among them
        check_batch(batch, 2, 1)
        # left half white, right half black survives the bilinear resize (only the middle columns blend)
        assert (batch[..., :12] > 1 - STEP).all()
        assert (batch[..., 20:] < -1 + STEP).all()


def test_mnist_with_nc3_replicates_the_gray_channel(mnist_dir):
    ds, info = create_dataset("mnist", mnist_dir, batch_size=2, nc=3)
    assert (info.nc, info.source_nc) == (3, 1)
    batch = first_batch(ds)
    check_batch(batch, 2, 3)
    np.testing.assert_array_equal(batch[:, 0], batch[:, 1])
    np.testing.assert_array_equal(batch[:, 0], batch[:, 2])


def wide_pattern(_index):
    """64x32 (w x h): black 12-column borders, white middle. The center 32 columns (x2 at 64 px, with room for the
    bilinear blend) are white, so the result is all white only if the resize keeps the aspect (short side to the
    target) and the crop takes the center; squashing or a corner crop would bring in black."""
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, 12:52] = 255
    return image


@pytest.mark.parametrize("image_size", [32, 64])
def test_flat_folder_resizes_short_side_and_center_crops(tmp_path, image_size):
    root = fx.write_images(tmp_path / "flat", 4, wide_pattern)
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    ds, info = create_dataset("folder", root, image_size=image_size, batch_size=2)
    assert (info.name, info.nc, info.num_images, info.batches_per_epoch) == ("folder", 3, 4, 2)
    batch = first_batch(ds)
    check_batch(batch, 2, 3, image_size)
    np.testing.assert_allclose(batch, 1.0)


@pytest.mark.parametrize("name", ["folder", "imagenet", "lfw"])
def test_class_subfolders(tmp_path, name):
    root = fx.write_image_folder(tmp_path / "classes", classes=("a", "b", "c"), per_class=2, ext=".jpg")
    ds, info = create_dataset(name, root, batch_size=3)
    assert (info.name, info.nc, info.num_images, info.batches_per_epoch) == (name, 3, 6, 2)
    batches = all_batches(ds)
    assert len(batches) == 2
    check_batch(batches[0], 3, 3)
    np.testing.assert_allclose(batches[0], 1.0, atol=2 * STEP)  # white JPEGs


def test_folder_rgb_to_nc1(tmp_path):
    root = fx.write_images(tmp_path / "red", 2, (255, 0, 0))
    ds, info = create_dataset("folder", root, batch_size=2, nc=1)
    assert (info.nc, info.source_nc) == (1, 3)
    batch = first_batch(ds)
    check_batch(batch, 2, 1)
    np.testing.assert_allclose(batch, level(0.299 * 255), atol=STEP)


def test_folder_of_grayscale_pngs_decodes_to_rgb(tmp_path):
    root = fx.write_images(tmp_path / "gray", 2, lambda i: np.full((32, 32), 100, np.uint8))
    ds, info = create_dataset("folder", root, batch_size=2)
    assert info.nc == 3
    np.testing.assert_allclose(first_batch(ds), level(100), atol=1e-6)


@pytest.mark.parametrize("layout", ["mindspore", "download"])
def test_celeba(tmp_path, layout):
    root = fx.write_celeba(tmp_path / "celeba", count=4, layout=layout)  # partitions 0 1 2 0: 2 training images
    ds, info = create_dataset("celeba", root, image_size=64, batch_size=2)
    assert (info.name, info.nc, info.num_images, info.split) == ("celeba", 3, 2, "train")
    expected_root = root if layout == "mindspore" else os.path.join(root, "img_align_celeba")
    assert info.data_path == expected_root
    batch = first_batch(ds)
    check_batch(batch, 2, 3, 64)
    np.testing.assert_allclose(batch, 1.0, atol=2 * STEP)


def test_lsun_reads_the_train_folders(tmp_path):
    root = fx.write_lsun(tmp_path / "lsun", folders=(("bedroom_train", 6), ("bedroom_val", 2)), image=(0, 0, 255))
    ds, info = create_dataset("lsun", root, image_size=64, batch_size=3)
    assert (info.name, info.nc, info.num_images, info.batches_per_epoch, info.split) == ("lsun", 3, 6, 2, "train")
    batch = first_batch(ds)
    check_batch(batch, 3, 3, 64)
    np.testing.assert_allclose(batch[:, 0], -1.0, atol=3 * STEP)  # blue JPEGs
    np.testing.assert_allclose(batch[:, 2], 1.0, atol=3 * STEP)


def test_fake_defaults_to_ten_batches_and_is_seeded():
    ds, info = create_dataset("fake", batch_size=4, seed=3)
    assert (info.name, info.nc, info.num_images, info.batches_per_epoch) == ("fake", 3, 40, 10)
    assert info.split == NO_SPLIT
    batch = first_batch(ds)
    check_batch(batch, 4, 3)
    assert batch.std() > 0.3  # random, not constant
    again, _ = create_dataset("fake", batch_size=4, seed=3)
    np.testing.assert_array_equal(first_batch(again), batch)


def test_fake_size_and_nc():
    ds, info = create_dataset("fake", image_size=64, batch_size=4, nc=1, fake_size=13)
    assert (info.nc, info.num_images, info.batches_per_epoch) == (1, 13, 3)
    check_batch(first_batch(ds), 4, 1, 64)


def test_digits_is_1347_training_digits_upscaled():
    from sklearn.datasets import load_digits

    from src.data import digits_split

    ds, info = create_dataset("digits", batch_size=8, shuffle=False)
    assert (info.name, info.nc, info.source_nc, info.num_images, info.split) == ("digits", 1, 1, 1347, "train")
    assert info.batches_per_epoch == 1347 // 8
    batch = first_batch(ds)
    check_batch(batch, 8, 1)
    assert batch.max() == 1.0 and batch.min() == -1.0  # 0..16 spans the whole range
    # bilinear upscaling roughly keeps each image's mean brightness; the first 8 training digits, in order
    source = load_digits().images[digits_split()["train"][:8]] / 16.0 * 2 - 1
    np.testing.assert_allclose(batch.mean(axis=(1, 2, 3)), source.mean(axis=(1, 2)), atol=0.1)


def test_digits_nc3():
    ds, info = create_dataset("digits", batch_size=4, nc=3)
    batch = first_batch(ds)
    check_batch(batch, 4, 3)
    np.testing.assert_array_equal(batch[:, 0], batch[:, 2])


# --- splits: the training split by default, the test split held out ----------------------------------------------

def split_count_and_colour(name, root, split, **kwargs):
    ds, info = create_dataset(name, root, batch_size=2, shuffle=False, split=split, **kwargs)
    return info, first_batch(ds)


@pytest.mark.parametrize("split, count, rgb", [("train", 10000, CIFAR_TRAIN_RGB), ("test", 10000, CIFAR_TEST_RGB),
                                               ("all", 20000, None)])
def test_cifar10_splits(cifar_dir, split, count, rgb):
    info, batch = split_count_and_colour("cifar10", cifar_dir, split)
    assert (info.num_images, info.split) == (count, split)
    if rgb:  # every image of that split has its colour
        np.testing.assert_allclose(batch.mean(axis=(2, 3)), [[level(v) for v in rgb]] * 2, atol=1e-6)


def test_cifar10_directory_holding_only_the_test_batch_trains_on_it(tmp_path):
    root = fx.write_cifar10(tmp_path / "cifar", files=("test_batch",), rgb=CIFAR_TEST_RGB,
                            subdir="cifar-10-batches-bin")
    info, batch = split_count_and_colour("auto", root, "train")
    assert (info.name, info.num_images, info.split) == ("cifar10", 10000, "test (the only split on disk)")
    np.testing.assert_allclose(batch[:, 1], 1.0)  # green: the test images


@pytest.mark.parametrize("split, count", [("train", 4), ("test", 2), ("all", 6)])
def test_mnist_splits(mnist_dir, split, count):
    ds, info = create_dataset("mnist", mnist_dir, batch_size=1, shuffle=False, split=split)
    assert (info.num_images, info.batches_per_epoch, info.split) == (count, count, split)
    black = [bool((b < -1 + STEP).all()) for b in all_batches(ds)]  # the test images are black
    assert sum(black) == {"train": 0, "test": 2, "all": 2}[split]


@pytest.mark.parametrize("split, expected", [("train", "test (the only split on disk)"), ("test", "test"),
                                             ("all", "test (the only split on disk)")])
def test_mnist_directory_holding_only_the_test_files_trains_on_them(tmp_path, split, expected):
    root = fx.write_mnist(tmp_path / "mnist", n_train=0, n_test=3)
    _, info = create_dataset("auto", root, batch_size=1, split=split)
    assert (info.name, info.num_images, info.split) == ("mnist", 3, expected)


def test_mnist_directory_holding_only_the_training_files(tmp_path):
    root = fx.write_mnist(tmp_path / "mnist", n_train=3, n_test=0)
    _, info = create_dataset("mnist", root, batch_size=1, split="test")
    assert (info.num_images, info.split) == (3, "train (the only split on disk)")


def test_digits_hold_out_a_fixed_stratified_quarter_that_verify_tests_on():
    from sklearn.datasets import load_digits

    from src.data import digits_split
    from src.data.labelled import load_splits

    infos = {split: create_dataset("digits", batch_size=1, split=split)[1] for split in ("train", "test", "all")}
    assert {s: (i.num_images, i.split) for s, i in infos.items()} == {"train": (1347, "train"), "test": (450, "test"),
                                                                      "all": (1797, "all")}
    ds, _ = create_dataset("digits", batch_size=450, shuffle=False, split="test")
    test_images = first_batch(ds)
    parts = digits_split()
    assert len(parts["train"]) == 1347 and len(parts["test"]) == 450
    assert not set(parts["train"]) & set(parts["test"])
    assert sorted(np.concatenate([parts["train"], parts["test"]])) == list(range(1797))
    labels = load_digits().target
    # stratified: every class holds out a quarter of its images, give or take one
    assert np.abs(np.bincount(labels[parts["test"]]) - np.bincount(labels) / 4).max() <= 1
    # deterministic: drawn again, it is the same split (the fixed seed, not the process's random state)
    state = np.random.get_state()
    np.random.seed(12345)
    digits_split.cache_clear()
    again = digits_split()
    np.random.set_state(state)
    for part in ("train", "test"):
        np.testing.assert_array_equal(again[part], parts[part])
    # verify.py's split is the same one, whatever its --seed: its test images are exactly the held-out ones.
    for seed in (0, 7):
        splits, note = load_splits("digits", None, image_size=32, nc=1, seed=seed)
        assert "seed 0" in note and "holds out" in note
        np.testing.assert_array_equal(splits["test"][0], test_images)
        np.testing.assert_array_equal(splits["test"][1], labels[parts["test"]])
        np.testing.assert_array_equal(splits["train"][1], labels[parts["train"]])


@pytest.mark.parametrize("layout", ["mindspore", "download"])
def test_celeba_splits_follow_list_eval_partition(tmp_path, layout):
    root = fx.write_celeba(tmp_path / "celeba", count=7, layout=layout)  # partitions 0 1 2 0 1 2 0
    counts = {split: create_dataset("celeba", root, batch_size=1, split=split)[1] for split in ("train", "test", "all")}
    assert {s: (i.num_images, i.split) for s, i in counts.items()} == {"train": (3, "train"), "test": (2, "test"),
                                                                      "all": (7, "all")}
    os.remove(os.path.join(root, "list_eval_partition.txt"))
    _, info = create_dataset("celeba", root, batch_size=1)
    assert (info.num_images, info.split) == (7, "all (no list_eval_partition.txt)")


def test_lsun_test_split_reads_the_val_folders(tmp_path):
    root = fx.write_lsun(tmp_path / "lsun", folders=(("bedroom_train", 4), ("bedroom_val", 2), ("tower_val", 1)))
    infos = {split: create_dataset("lsun", root, batch_size=1, split=split)[1] for split in ("train", "test", "all")}
    assert {s: (i.num_images, i.split) for s, i in infos.items()} == {
        "train": (4, "train"), "test": (3, "val (LSUN's _val folders stand in for test)"), "all": (7, "all")}
    only_val = fx.write_lsun(tmp_path / "val", folders=(("bedroom_val", 2),))
    _, info = create_dataset("lsun", only_val, batch_size=1)
    assert (info.num_images, info.split) == (2, "val (the only split on disk)")


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_datasets_without_official_splits_are_read_whole(tmp_path, split):
    flat = fx.write_images(tmp_path / "flat", 3)
    classes = fx.write_image_folder(tmp_path / "classes", per_class=2)
    for name, root, count in (("folder", flat, 3), ("imagenet", classes, 4), ("fake", None, 40)):
        _, info = create_dataset(name, root, batch_size=1, split=split, fake_size=count if root is None else None)
        assert (info.num_images, info.split) == (count, NO_SPLIT)


def test_train_py_records_the_split(tmp_path):
    """The user's path: train.py on an MNIST directory trains on the training files and says so."""
    mnist = fx.write_mnist(tmp_path / "mnist", n_train=8, n_test=4)
    run = tmp_path / "run"
    train("--dataset", "mnist", "--data_path", mnist, "--output_path", str(run), "--max_steps", "2", "--ngf", "8",
          "--ndf", "8", "--nz", "16", "--batch_size", "4")
    config = json.loads((run / "config.json").read_text())
    assert config["split"] == "train"
    log = (run / "train.log").read_text()
    assert "8 images" in log and "split train" in log, log


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
