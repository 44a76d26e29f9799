"""Fault injection for data (promise 3): unreadable, truncated and non-image files inside a dataset folder are
skipped and counted in the log, every epoch keeps its batch count (so resume stays exact), --strict stops at the
first bad file with one line, and a dataset too small to train on is one line before anything is compiled."""
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from src.data import BadFiles
from src.dataset import create_dataset
from src.errors import UserError
from tests import fixtures as fx
from tests.cli import train

GOOD = 13  # + 3 bad files = 16 listed files: 4 batches of 4 per epoch, the 4th needs the top-up pass
BATCH = 4
BAD = {"corrupt.jpg": "not an image in a known format",  # random bytes
       "truncated.png": "image file is truncated",  # the first 100 bytes of a real PNG
       "notes.png": "not an image in a known format"}  # text renamed .png
SMALL = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", str(BATCH), "--log_interval", "1"]


def grey(i):
    """Good image i < 15 is a flat grey of level 10 + 16 * i (PNG, so exact): a batch says which images it holds."""
    assert i < 15
    return fx.solid((10 + 16 * i,) * 3, 40, 48)


def ids_of(batch):
    return [int(round(((x.mean() + 1) * 127.5 - 10) / 16)) for x in batch]


def noisy_png(seed=0):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 48, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def add_bad_files(directory, prefix=""):
    """The three bad files of BAD, named with `prefix`; returns their paths."""
    data = {"corrupt.jpg": np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes(),
            "truncated.png": noisy_png()[:100],
            "notes.png": b"these are my notes, not a picture\n"}
    paths = []
    for name, content in data.items():
        path = os.path.join(directory, prefix + name)
        with open(path, "wb") as f:
            f.write(content)
        paths.append(path)
    return paths


def folder_with_bad_files(directory, good=GOOD, image=grey):
    root = fx.write_images(directory, good, image)
    return root, add_bad_files(root)


def one_epoch(ds, info, log=None):
    return [ids_of(b[0].asnumpy()) for b in info.bad_files.iterate(ds, info.batches_per_epoch, log)]


# ---------------------------------------------------------------------------------------------------------------
# create_dataset on folders with bad files

def class_folders_with_bad_files(directory):
    """Good images 0..6 and two bad files in a/, good images 7..12 and one bad file in b/ (ImageFolderDataset)."""
    fx.write_images(os.path.join(directory, "a"), 7, grey)
    fx.write_images(os.path.join(directory, "b"), GOOD - 7, lambda i: grey(7 + i))
    bad = add_bad_files(os.path.join(directory, "a"))
    os.rename(bad[2], os.path.join(directory, "b", "notes.png"))
    return str(directory), bad[:2] + [os.path.join(directory, "b", "notes.png")]


LAYOUTS = {"flat": folder_with_bad_files, "class folders": class_folders_with_bad_files}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_files_are_skipped_and_counted_and_every_good_image_is_read(tmp_path, layout):
    root, bad = LAYOUTS[layout](tmp_path / "data")
    ds, info = create_dataset("folder", root, batch_size=BATCH, seed=3)
    assert (info.num_images, info.batches_per_epoch) == (GOOD + 3, 4)  # counted from the listing: 16 files
    logged = []
    batches = one_epoch(ds, info, logged.append)
    assert len(batches) == info.batches_per_epoch  # the epoch keeps its length: topped up from a second pass
    seen = [i for batch in batches for i in batch]
    assert sorted(seen[:GOOD]) == list(range(GOOD))  # the first pass: every good image once, nothing else
    assert set(seen[GOOD:]) <= set(range(GOOD))  # the top-up: good images again, never a bad one
    assert info.bad_files.count == 3
    assert dict(info.bad_files.entries()) == {path: BAD[os.path.basename(path)] for path in bad}
    assert logged[0].startswith("skipped 3 unreadable image files so far (first: ")
    assert sorted(line.split(": ")[0] for line in logged[1:]) == sorted(f"  skipped {path}" for path in bad)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_epoch_with_bad_files_depends_on_the_seed_alone(tmp_path, layout):
    root, _ = LAYOUTS[layout](tmp_path / "data")
    runs = [one_epoch(*create_dataset("folder", root, batch_size=BATCH, seed=seed)) for seed in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    # The same pipeline iterated again (after an iteration abandoned early) gives the same epoch: the top-up
    # bookkeeping starts afresh with every iteration.
    ds, info = create_dataset("folder", root, batch_size=BATCH, seed=5)
    next(iter(ds.create_tuple_iterator(num_epochs=1)))
    assert one_epoch(ds, info) == one_epoch(ds, info) == runs[0]


def test_the_top_up_pass_is_not_decoded_when_the_first_pass_fills_the_epoch(tmp_path, monkeypatch):
    from src.data import bad_files
    decoded = []
    original = bad_files.decode
    monkeypatch.setattr(bad_files, "decode", lambda data: decoded.append(1) or original(data))
    root = fx.write_images(tmp_path / "flat", 100, noise_image)
    add_bad_files(root)  # 103 files: 25 batches of 4, all from the 100 good images; no top-up needed
    ds, info = create_dataset("folder", root, batch_size=BATCH)
    batches = [b[0] for b in ds.create_tuple_iterator(num_epochs=1, output_numpy=True)]  # to the very end
    assert len(batches) == info.batches_per_epoch == 25
    # The first pass, and the few top-up images already queued to the decoder before the first pass ended (at most
    # MindSpore's queue depth), instead of the whole top-up pass (206 decodes in all).
    assert len(decoded) <= 103 + 32


def test_without_drop_remainder_the_last_batch_is_partial(tmp_path):
    root, _ = folder_with_bad_files(tmp_path / "flat", good=GOOD + 2)  # 18 files: 5 batches, 18 images
    ds, info = create_dataset("folder", root, batch_size=BATCH, drop_remainder=False)
    batches = one_epoch(ds, info)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 2]
    seen = [i for batch in batches for i in batch]
    assert sorted(seen[:GOOD + 2]) == list(range(GOOD + 2)) and set(seen[GOOD + 2:]) <= set(range(GOOD + 2))


def test_counts_carry_over_epochs_and_each_file_is_counted_once(tmp_path):
    root, _ = folder_with_bad_files(tmp_path / "flat")
    ds, info = create_dataset("folder", root, batch_size=BATCH, seed=0)
    logged = []
    one_epoch(ds, info, logged.append)
    assert len(logged) == 4  # the count and the three files
    ds, again = create_dataset("folder", root, batch_size=BATCH, seed=1, bad_files=info.bad_files)
    assert again.bad_files is info.bad_files
    one_epoch(ds, again, logged.append)
    assert info.bad_files.count == 3 and len(logged) == 4  # nothing new: no second report


def test_strict_stops_at_the_first_bad_file_naming_it(tmp_path):
    root, bad = folder_with_bad_files(tmp_path / "flat")
    ds, info = create_dataset("folder", root, batch_size=BATCH, strict=True)
    with pytest.raises(UserError, match="bad image file .*--strict") as error:
        one_epoch(ds, info)
    assert any(f"bad image file {path}: {BAD[os.path.basename(path)]}" in str(error.value) for path in bad)


def test_more_bad_files_than_the_top_up_can_cover_is_one_clear_error(tmp_path):
    root = fx.write_images(tmp_path / "flat", 5, grey)
    for i in range(4):
        add_bad_files(root, prefix=f"{i}_")  # 12 bad, 5 good: 17 files, 4 batches wanted, 2 possible
    ds, info = create_dataset("folder", root, batch_size=BATCH)
    with pytest.raises(UserError, match=r"only 2 of the epoch's 4 batches could be formed: skipped 12 unreadable"):
        one_epoch(ds, info)


def test_celeba_bad_file_is_skipped_and_named(tmp_path):
    root = fx.write_celeba(tmp_path / "celeba", count=6)
    with open(os.path.join(root, "000003.jpg"), "wb") as f:
        f.write(noisy_png()[:100])
    ds, info = create_dataset("celeba", root, image_size=64, batch_size=2, split="all")
    assert len(one_epoch(ds, info)) == info.batches_per_epoch == 3
    assert info.bad_files.first == os.path.join(root, "000003.jpg") + ": image file is truncated"


def test_lsun_bad_file_is_skipped_and_found_on_disk_by_its_content(tmp_path):
    # LSUNDataset does not say which file it read: the bad file is named by looking for its size and hash.
    root = fx.write_lsun(tmp_path / "lsun", folders=(("bedroom_train", 5), ("bedroom_val", 1)))
    bad = os.path.join(root, "bedroom_train", "img0002.jpg")
    with open(bad, "wb") as f:
        f.write(b"GIF89a but not really")
    ds, info = create_dataset("lsun", root, image_size=64, batch_size=2, split="all")
    assert len(one_epoch(ds, info)) == info.batches_per_epoch == 3
    assert info.bad_files.count == 1
    assert info.bad_files.first.startswith(bad + ": ")


def test_a_file_deleted_after_the_listing_is_a_bad_file(tmp_path):
    root, _ = folder_with_bad_files(tmp_path / "data")
    ds, info = create_dataset("folder", root, batch_size=BATCH)
    gone = os.path.join(root, "img0000.png")
    os.remove(gone)  # as by another process during a long run
    assert len(one_epoch(ds, info)) == info.batches_per_epoch
    assert (gone, "cannot read it: No such file or directory") in info.bad_files.entries()
    assert info.bad_files.count == 4


def test_files_that_cannot_be_read_in_class_folders_are_bad_files(tmp_path):
    # ImageFolderDataset lists these by their names; reading them fails as a permission error or I/O error would.
    root, _ = class_folders_with_bad_files(tmp_path / "data")
    os.symlink(str(tmp_path / "nowhere.png"), os.path.join(root, "a", "dangling.png"))
    os.makedirs(os.path.join(root, "b", "folder.jpg"))
    ds, info = create_dataset("folder", root, batch_size=BATCH)
    assert len(one_epoch(ds, info)) == info.batches_per_epoch
    entries = info.bad_files.entries()
    assert (os.path.join(root, "a", "dangling.png"), "cannot read it: No such file or directory") in entries
    assert (os.path.join(root, "b", "folder.jpg"), "cannot read it: Is a directory") in entries
    assert info.bad_files.count == 5


def test_bad_files_object_without_files():
    bad = BadFiles()
    assert (bad.count, bad.first, bad.report()) == (0, None, [])


# ---------------------------------------------------------------------------------------------------------------
# train.py end to end

def noise_image(i):
    return np.random.default_rng(100 + i).integers(0, 256, (40, 48, 3), np.uint8)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = fx.write_images(tmp_path_factory.mktemp("photos"), GOOD, noise_image, ext=".jpg")
    return root, add_bad_files(root)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, bad_folder):
    """6 steps over 2 epochs of 4 batches, on the folder with 3 bad files."""
    run = tmp_path_factory.mktemp("straight") / "run"
    result = train("--dataset", "folder", "--data_path", bad_folder[0], "--output_path", str(run),
                   "--epoch_size", "2", "--max_steps", "6", *SMALL)
    return run, result


def state(run, step):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(run / "ckpt" / f"train_state_{step:08d}.ckpt")).items()
            if not isinstance(v, str)}


def test_a_run_over_bad_files_completes_and_logs_them(straight_run, bad_folder):
    run, result = straight_run
    log = (run / "train.log").read_text()
    assert "4 steps/epoch, 6 steps in all" in log
    assert log.count("skipped 3 unreadable image files so far (first: ") == 1  # reported once, when found
    for path in bad_folder[1]:
        assert f"skipped {path}: {BAD[os.path.basename(path)]}" in log
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert result.stderr.strip() == ""


def test_resume_over_bad_files_is_exact(tmp_path, straight_run, bad_folder):
    """3 steps + resume to 6 == 6 straight steps: the skipped files and the top-up do not move the data order."""
    run = tmp_path / "split"
    common = ["--dataset", "folder", "--data_path", bad_folder[0], "--output_path", str(run), "--epoch_size", "2",
              *SMALL]
    train(*common, "--max_steps", "3")
    train("--resume", "--output_path", str(run), "--max_steps", "6")
    straight, split = state(straight_run[0], 6), state(run, 6)
    assert straight.keys() == split.keys()
    for name in straight:
        np.testing.assert_array_equal(split[name], straight[name], err_msg=name)


def test_strict_run_stops_with_one_line_naming_the_bad_file(tmp_path, bad_folder):
    result = train("--dataset", "folder", "--data_path", bad_folder[0], "--output_path", str(tmp_path / "run"),
                   "--epoch_size", "1", "--strict", *SMALL, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert any(lines[0].startswith(f"error: bad image file {path}: ") for path in bad_folder[1]), lines[0]


def test_a_strict_run_remembers_it_on_resume_and_no_strict_turns_it_off(tmp_path):
    data = fx.write_images(tmp_path / "photos", GOOD, noise_image, ext=".jpg")
    run = tmp_path / "run"
    train("--dataset", "folder", "--data_path", data, "--output_path", str(run), "--epoch_size", "2", "--strict",
          "--max_steps", "2", *SMALL)
    bad = add_bad_files(data)  # files added between the two sessions, bad ones: other data, so allowed explicitly
    result = train("--resume", "--output_path", str(run), "--max_steps", "6", check=False)
    assert result.returncode == 2 and "--allow_data_change" in result.stderr, result.stderr
    result = train("--resume", "--output_path", str(run), "--max_steps", "6", "--allow_data_change", check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: bad image file "), result.stderr
    train("--resume", "--output_path", str(run), "--max_steps", "6", "--no-strict")
    log = (run / "train.log").read_text()
    assert all(f"skipped {path}: " in log for path in bad)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()][-1] == 6


@pytest.mark.parametrize("case", ["empty", "only bad files", "fewer images than a batch"])
def test_a_dataset_too_small_to_train_is_one_line_before_compilation(tmp_path, case):
    data = tmp_path / "data"
    if case == "empty":
        data.mkdir()
    elif case == "only bad files":  # listed as images, so counted; not one of them decodes
        os.makedirs(data)
        add_bad_files(str(data))
        add_bad_files(str(data), prefix="more_")
    else:
        fx.write_images(data, 3)
    run = tmp_path / "run"
    result = train("--dataset", "folder", "--data_path", str(data), "--output_path", str(run), *SMALL, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    message = {"empty": "is empty", "fewer images than a batch": "3 images, fewer than one batch of 4",
               "only bad files": "only 0 of the epoch's 1 batches could be formed: skipped 6 unreadable"}[case]
    assert message in lines[0]
    if case != "only bad files":  # found from the listing alone, before the networks are built and compiled
        log = run / "train.log"
        assert not log.exists() or "parameters" not in log.read_text()
