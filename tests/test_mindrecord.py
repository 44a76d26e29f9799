"""prepare_data.py / src/data/mindrecord.py: a source converted once to MindRecord reads back exactly as train.py
would have read the source, sharded or not, through create_dataset('mindrecord' or 'auto') and train.py."""
import json
import os

import numpy as np
import pytest

import prepare_data
from src.data import NO_SPLIT, detect_format
from src.data.convert import convert
from src.data.mindrecord import META_FILE
from src.dataset import create_dataset
from src.errors import UserError
from tests.cli import run_tool
from tests.fixtures import write_image_folder, write_images, write_mnist


def random_image(height, width):
    """index -> a seeded random RGB image (noise, so resizing and cropping change every pixel)."""
    return lambda i: np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)


def read_all(name, path, image_size, nc=None):
    """Every image of a create_dataset pipeline, in order (no shuffle), as float32 NCHW."""
    ds, info = create_dataset(name, str(path), image_size=image_size, batch_size=1, nc=nc, shuffle=False,
                              drop_remainder=False)
    return np.concatenate([b for (b,) in ds.create_tuple_iterator(num_epochs=1, output_numpy=True)]), info


def quiet(_line):
    pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Class sub-folders of 70x50 PNGs of noise: 6 images, resized to the short side and center-cropped."""
    return write_image_folder(tmp_path_factory.mktemp("src") / "folder", per_class=3, image=random_image(50, 70))


def test_image_folder_reads_back_pixel_exact(folder, tmp_path):
    out = tmp_path / "mr"
    meta = convert("folder", folder, str(out), 64, log=quiet)
    assert meta["count"] == 6 and meta["image_size"] == 64 and meta["nc"] == 3
    assert json.loads((out / META_FILE).read_text()) == meta
    assert meta["source"]["dataset"] == "folder" and meta["source"]["path"] == os.path.abspath(folder)
    assert meta["source"]["split"] == NO_SPLIT  # a folder has no official split: all of it is converted
    source, source_info = read_all("folder", folder, 64)
    stored, info = read_all("mindrecord", out, 64)
    assert info.name == "mindrecord" and info.num_images == 6 and info.nc == 3 and info.split == NO_SPLIT
    assert stored.dtype == np.float32 and stored.shape == (6, 3, 64, 64)
    np.testing.assert_array_equal(stored, source)  # same pixels, same order: what train.py would have seen

    # auto-detection, and the stored nc converted on request by the shared channel conversion
    assert detect_format(str(out)) == "mindrecord"
    auto, auto_info = read_all("auto", out, 64)
    assert auto_info.name == "mindrecord"
    np.testing.assert_array_equal(auto, source)
    gray, gray_info = read_all("mindrecord", out, 64, nc=1)
    np.testing.assert_array_equal(gray, read_all("folder", folder, 64, nc=1)[0])
    assert gray_info.nc == 1 and gray_info.source_nc == 3

    with pytest.raises(UserError, match="stored at 64 px but image_size 32 was asked"):
        create_dataset("mindrecord", str(out), image_size=32, batch_size=2)


def noise_28(i):
    return np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)


def test_mnist_in_sharded_files_reads_back_fully(tmp_path):
    # 11 training images and 4 test images: only the training split is converted by default.
    mnist = write_mnist(tmp_path / "mnist", n_train=11, n_test=4, image=noise_28,
                        test_image=lambda i: noise_28(100 + i))
    out = tmp_path / "mr"
    lines = []
    meta = convert("auto", mnist, str(out), 32, nc=3, num_shards=3, log=lines.append, progress_seconds=0)
    assert meta["files"] == ["images.mindrecord0", "images.mindrecord1", "images.mindrecord2"]
    assert meta["source"]["dataset"] == "mnist" and meta["count"] == 11 and meta["nc"] == 3
    assert meta["source"]["split"] == "train" and meta["source"]["images"] == 11
    assert "converting 11 mnist images" in lines[0] and "(split train)" in lines[0]
    assert any("11/11 images" in line for line in lines) and lines[-1].startswith("wrote 11 images")
    source, _ = read_all("mnist", mnist, 32, nc=3)
    stored, info = read_all("auto", out, 32)
    assert info.num_images == 11 and info.source_nc == 3 and info.split == "train"
    # Shards interleave rows on reading, so compare as sets of images.
    as_set = lambda images: sorted(image.tobytes() for image in images)  # noqa: E731
    assert as_set(stored) == as_set(source)

    # create_dataset's own sharding (data-parallel training) over the sharded files: disjoint, complete.
    parts = []
    for shard_id in range(2):
        ds, _ = create_dataset("mindrecord", str(out), image_size=32, batch_size=1, shuffle=True, seed=5,
                               num_shards=2, shard_id=shard_id, drop_remainder=False)
        parts += [b[0] for (b,) in ds.create_tuple_iterator(num_epochs=1, output_numpy=True)]
    assert len(parts) == 12  # 11 images in 2 shards: MindDataset pads the short shard with one repeat
    assert set(as_set(parts)) == set(as_set(source))


@pytest.mark.parametrize("split, count", [("test", 3), ("all", 8)])
def test_other_splits_convert_on_request(tmp_path, split, count):
    mnist = write_mnist(tmp_path / "mnist", n_train=5, n_test=3, image=noise_28)
    meta = convert("mnist", mnist, str(tmp_path / "mr"), 32, split=split, log=quiet)
    assert (meta["count"], meta["source"]["split"]) == (count, split)
    _, info = read_all("mindrecord", tmp_path / "mr", 32)
    assert (info.num_images, info.split) == (count, split)


def test_a_directory_with_one_split_converts_what_it_has(tmp_path):
    mnist = write_mnist(tmp_path / "mnist", n_train=0, n_test=3, image=noise_28)
    meta = convert("mnist", mnist, str(tmp_path / "mr"), 32, log=quiet)
    assert (meta["count"], meta["source"]["split"]) == (3, "test (the only split on disk)")


def test_a_conversion_without_a_recorded_split_reads_as_unsplit(folder, tmp_path):
    out = tmp_path / "mr"
    convert("folder", folder, str(out), 32, log=quiet)
    meta = json.loads((out / META_FILE).read_text())
    del meta["source"]["split"]  # as written before --split existed
    (out / META_FILE).write_text(json.dumps(meta))
    _, info = read_all("mindrecord", out, 32)
    assert (info.num_images, info.split) == (6, NO_SPLIT)


def test_bad_image_file_is_skipped_and_counted_or_stops_strict_conversion(tmp_path):
    flat = write_images(tmp_path / "flat", 4, image=random_image(40, 40))
    with open(os.path.join(flat, "img0002.png"), "wb") as f:
        f.write(b"not a png")
    meta = convert("folder", flat, str(tmp_path / "lenient"), 32, log=quiet)
    assert meta["count"] == 3 and meta["source"]["skipped_bad_files"] == 1
    with pytest.raises(UserError, match="img0002.png"):
        convert("folder", flat, str(tmp_path / "strict"), 32, strict=True, log=quiet)
    assert not os.path.exists(tmp_path / "strict")  # nothing half-written is left behind


def cli(argv, capsys):
    code = prepare_data.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--data_path", "{missing}", "--image_size", "32"], "does not exist"),
    (["--data_path", "{folder}", "--image_size", "48"], "image size 48 is not supported"),
    (["--data_path", "{folder}", "--image_size", "32", "--nc", "2"], "nc must be 1 or 3"),
    (["--data_path", "{folder}", "--image_size", "32", "--num_shards", "0"], "num_shards must be an integer >= 1"),
    (["--data_path", "{folder}", "--image_size", "32", "--num_shards", "7"], "more than the 6 images"),
    (["--dataset", "mindrecord", "--data_path", "{folder}", "--image_size", "32"], "already MindRecord"),
    (["--dataset", "cifar10", "--data_path", "{folder}", "--image_size", "32"], "no CIFAR-10 binary batches"),
    (["--data_path", "{folder}", "--image_size", "32", "--bogus"], "unrecognized arguments"),
    (["--data_path", "{folder}", "--image_size", "32", "--split", "valid"], "argument --split: invalid choice"),
    (["--data_path", "{folder}"], "--image_size"),
])
def test_bad_input_is_one_line_and_exit_code_2(folder, tmp_path, capsys, argv, message):
    argv = [a.format(folder=folder, missing=tmp_path / "missing") for a in argv]
    code, err = cli(argv + ["--output_path", str(tmp_path / "out")], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "out")


def test_refuses_to_overwrite_or_to_write_inside_the_source(folder, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    code, err = cli(["--data_path", folder, "--image_size", "32", "--output_path", str(taken)], capsys)
    assert code == 2 and "is not empty" in err and err.count("\n") == 1
    assert os.listdir(taken) == ["keep.txt"]
    code, err = cli(["--data_path", folder, "--image_size", "32", "--output_path", os.path.join(folder, "mr")],
                    capsys)
    assert code == 2 and "must not be inside the source" in err


def test_unfinished_or_foreign_output_is_refused_when_read(tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "images.mindrecord").write_bytes(b"")
    with pytest.raises(UserError, match="conversion did not finish"):
        create_dataset("auto", str(unfinished), image_size=32, batch_size=1)
    (unfinished / META_FILE).write_text('{"format": "something else"}')
    with pytest.raises(UserError, match="not written by prepare_data.py"):
        create_dataset("mindrecord", str(unfinished), image_size=32, batch_size=1)


def test_prepare_data_then_train_from_mindrecord(folder, tmp_path):
    """The user's path, as real processes: convert with prepare_data.py, then train.py --dataset mindrecord."""
    out, run = tmp_path / "mr", tmp_path / "run"
    result = run_tool("prepare_data.py", "--data_path", folder, "--output_path", str(out), "--image_size", "32",
                      "--num_shards", "2", "--split", "all", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote 6 images" in result.stdout
    assert json.loads((out / META_FILE).read_text())["source"]["split"] == "all (no split on disk)"
    again = run_tool("prepare_data.py", "--data_path", folder, "--output_path", str(out), "--image_size", "32",
                     timeout=300)
    assert again.returncode == 2 and again.stderr.startswith("error:") and again.stderr.count("\n") == 1
    result = run_tool("train.py", "--dataset", "mindrecord", "--data_path", str(out), "--max_steps", "2",
                      "--batch_size", "4", "--ngf", "8", "--ndf", "8", "--nz", "16", "--log_interval", "1",
                      "--output_path", str(run))
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "mindrecord" and config["nc"] == 3
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
