"""Helpers shared by the dataset tests: what a pipeline's batches hold, and small datasets on disk."""
import numpy as np
import pytest

from tests import fixtures as fx

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
