"""src/dataset.py: every reader on tiny fixtures in the real on-disk formats (written by tests/fixtures.py)."""
import json
import os

import numpy as np
import pytest

from src.data import NO_SPLIT
from src.dataset import create_dataset
from tests import fixtures as fx
from tests.cli import check, run_python, train

from tests.dataset_checks import CIFAR_TEST_RGB, CIFAR_TRAIN_RGB, STEP, all_batches, check_batch, first_batch, level
from tests.dataset_checks import cifar_dir, mnist_dir  # noqa: F401 - pytest fixtures


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
