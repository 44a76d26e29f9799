"""train.py end to end, as a user runs it: real processes, real run directories, real checkpoints."""
import json
import os

import numpy as np
import pytest

from tests.cli import train
from tests.fixtures import write_images

# Narrow nets keep each run to seconds on a 2-core CPU; the code path is the full one.
SMALL = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--log_interval", "1"]


def read_state(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path).items() if not isinstance(v, str)}


def test_smoke_run_writes_config_log_metrics_grids_and_checkpoints(tmp_path):
    run = tmp_path / "run"
    result = train("--dataset", "fake", "--output_path", str(run), "--max_steps", "6", "--sample_interval", "3",
                   "--save_checkpoint_steps", "3", *SMALL)
    # The CPU speed fix is applied and said so: the project's kernels, or (no compiler) the AVX2 cap.
    assert "fast CPU convolutions: oneDNN kernels" in result.stdout or "ONEDNN_MAX_CPU_ISA=AVX2" in result.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "fake" and config["batch_size"] == 4 and config["nc"] == 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {"loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "images_per_s", "epoch"} <= set(records[0])
    assert "[6/6]" in (run / "train.log").read_text()
    samples = sorted(os.listdir(run / "samples"))
    assert "fake_step_00000003.png" in samples and "fake_step_00000006.png" in samples and "fake_latest.png" in samples
    assert (run / "real_samples.png").exists()
    ckpts = sorted(os.listdir(run / "ckpt"))
    assert ckpts == [f"{kind}_{step:08d}.ckpt" for kind in ("discriminator", "generator", "train_state")
                     for step in (3, 6)]
    # The generator checkpoint stands on its own: weights plus the architecture needed to rebuild G.
    from src.run.checkpoint import network_architecture
    assert network_architecture(str(run / "ckpt" / "generator_00000006.ckpt")) == {
        "net": "G", "image_size": 32, "nz": 16, "ngf": 8, "nc": 3, "ema_decay": 0.99}  # the averaged G, by default


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    """7 steps + resume to 12 steps == 12 uninterrupted steps, across an epoch boundary (10 steps per epoch)."""
    common = ["--dataset", "fake", "--epoch_size", "2", *SMALL]
    train(*common, "--output_path", str(tmp_path / "straight"), "--max_steps", "12")
    train(*common, "--output_path", str(tmp_path / "split"), "--max_steps", "7")
    resumed = train("--resume", "--output_path", str(tmp_path / "split"), "--max_steps", "12")
    assert "resumed from" in resumed.stdout and "at step 7" in resumed.stdout
    straight = read_state(str(tmp_path / "straight" / "ckpt" / "train_state_00000012.ckpt"))
    split = read_state(str(tmp_path / "split" / "ckpt" / "train_state_00000012.ckpt"))
    assert straight.keys() == split.keys()
    assert any(k.startswith("optG/moment1") for k in split)  # the Adam moments are part of the state
    for name in straight:
        np.testing.assert_allclose(split[name], straight[name], rtol=1e-6, atol=1e-7, err_msg=name)
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_warm_start_from_separate_generator_and_discriminator_weights(tmp_path):
    train("--dataset", "fake", "--output_path", str(tmp_path / "a"), "--max_steps", "2", *SMALL)
    ckpt = tmp_path / "a" / "ckpt"
    result = train("--dataset", "fake", "--output_path", str(tmp_path / "b"), "--max_steps", "1", *SMALL,
                   "--netG", str(ckpt / "generator_00000002.ckpt"), "--netD", str(ckpt / "discriminator_00000002.ckpt"))
    assert result.stdout.count("warm start: loaded") == 2


def test_folder_dataset_detected_from_path(tmp_path):
    rng = np.random.default_rng(0)
    data = write_images(tmp_path / "photos", 10, image=lambda i: rng.integers(0, 255, (48, 40, 3), np.uint8),
                        ext=".jpg")
    train("--dataset", "auto", "--data_path", data, "--output_path", str(tmp_path / "run"), "--max_steps", "2",
          *SMALL)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == "folder"


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet2"], "unknown dataset 'imagenet2'; choose one of"),
    (["--dataset", "folder"], "needs --data_path"),
    (["--dataset", "folder", "--data_path", "/nonexistent/images"], "does not exist"),
    (["--dataset", "folder", "--data_path", "{empty}"], "is empty"),
    (["--image_size", "48"], "image size 48 is not supported; choose 32 or 64"),
    (["--device_target", "TPU"], "unknown device target 'TPU'; choose one of: CPU, GPU, Ascend"),
    (["--device_target", "GPU"], "device target GPU is not available"),
    (["--output_path", "{file}/run"], "cannot write to output path"),
    (["--batch_size", "abc"], "invalid int value"),
    (["--resume", "--output_path", "{empty}"], "no run to resume"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a directory")
    args = [a.format(empty=tmp_path / "empty", file=tmp_path / "file") for a in args]
    if "--output_path" not in args:
        args += ["--output_path", str(tmp_path / "out")]
    result = train(*args, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_dataset_smaller_than_one_batch_is_refused_before_training(tmp_path):
    data = write_images(tmp_path / "few", 3)
    result = train("--dataset", "folder", "--data_path", data, "--output_path", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and "fewer than one batch of 128" in result.stderr


def test_a_new_run_never_overwrites_an_existing_runs_checkpoints(tmp_path):
    train("--dataset", "fake", "--output_path", str(tmp_path / "run"), "--max_steps", "1", *SMALL)
    before = sorted(os.listdir(tmp_path / "run" / "ckpt"))
    result = train("--dataset", "fake", "--output_path", str(tmp_path / "run"), "--max_steps", "1", *SMALL,
                   check=False)
    assert result.returncode == 2 and "--resume" in result.stderr
    assert sorted(os.listdir(tmp_path / "run" / "ckpt")) == before


def test_epoch_grids_and_the_report_keep_within_their_share_of_the_run(monkeypatch):
    """Budget (src/bookkeeping.py): a courtesy is due at first, then not again until its own last cost, divided by its
    share, has passed (and never before its minimum interval); a first guess stands in before it was ever timed."""
    import src.bookkeeping as bookkeeping

    now = [1000.0]
    monkeypatch.setattr(bookkeeping.time, "time", lambda: now[0])
    grids = bookkeeping.Budget(0.005)
    assert grids.due()  # the first epoch's grid is always saved
    now[0] += 0.05  # the grid took 50 ms: the next one is due 10 s later
    grids.spent(1000.0)
    now[0] += 9.9
    assert not grids.due()
    now[0] += 0.2
    assert grids.due()

    report = bookkeeping.Budget(0.005, min_interval=60, first_guess=1.0)  # a rendering of ~1 s: every 200 s at first
    now[0] += 100
    assert not report.due()
    now[0] += 101
    assert report.due()
    report.spent(now[0] - 0.1)  # a fast rendering: the minute's floor holds
    now[0] += 30
    assert not report.due()
    now[0] += 31
    assert report.due()


def test_the_loop_hides_the_runs_long_lived_objects_from_the_collector_and_gives_them_back(tmp_path):
    """Trainer.run freezes the heap after the first step (full collections over MindSpore's objects cost ~90 ms
    inside the loop) and unfreezes it when the run ends: a notebook or script that trains in-process gets its
    collector back as it was."""
    import gc

    from src.config import parse_train_args, resolve_train_config
    from src.trainer import Trainer

    cfg = resolve_train_config(parse_train_args(
        ["--dataset", "fake", "--max_steps", "3", "--metrics_interval", "0", "--fast_cpu", "off",
         "--output_path", str(tmp_path / "run"), *SMALL]))
    trainer = Trainer(cfg)
    step, frozen = trainer.train_step, []

    def counting_step(*args):
        frozen.append(gc.get_freeze_count())
        return step(*args)

    trainer.train_step = counting_step
    assert gc.get_freeze_count() == 0
    assert trainer.run() == 3
    assert frozen[0] == 0 and all(count > 0 for count in frozen[1:]), frozen
    assert gc.get_freeze_count() == 0
