"""Fault injection for checkpoints and training state: SIGKILL at any moment, damaged files, a full disk,
divergence, checkpoints of another architecture, and crafted files that must never run code."""
import json
import os
import pickle
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.cli import start_tool, train
from tests.conftest import ROOT

SMALL = ["--dataset", "fake", "--epoch_size", "2", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4",
         "--log_interval", "1", "--save_checkpoint_steps", "3", "--keep_checkpoint_max", "2"]
STEPS = 14  # 2 epochs of 10 steps on fake, capped: crosses an epoch boundary


def state(run, step):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(run / "ckpt" / f"train_state_{step:08d}.ckpt")).items()
            if not isinstance(v, str)}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", str(STEPS))
    return state(run, STEPS)


def start(run, *extra):
    return start_tool("train.py", *SMALL, "--output_path", run, "--max_steps", STEPS, *extra, output=subprocess.DEVNULL)


def kill_when(process, condition, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, "training ended before the kill"
        assert time.time() < deadline, "the kill point was never reached"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


def logged_step(run):
    log = run / "train.log"
    return max((int(line.split("[")[1].split("/")[0]) for line in log.read_text().splitlines()
                if "] epoch" in line), default=0) if log.exists() else 0


@pytest.mark.parametrize("kill_at", [4, 8, 11])
def test_sigkill_mid_training_then_resume_matches_the_uninterrupted_run(tmp_path, uninterrupted, kill_at):
    run = tmp_path / "run"
    kill_when(start(run), lambda: logged_step(run) >= kill_at)
    train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert_same_state(state(run, STEPS), uninterrupted)  # bitwise on CPU


def test_sigkill_during_a_checkpoint_write_then_resume_matches(tmp_path, uninterrupted):
    # A save from step 6 on (a complete set from step 3 exists; the one being written must not count). A write
    # lasts milliseconds, so the poll can miss every save of a run: then the run is repeated, up to 3 times.
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        ckpt = run / "ckpt"
        writing = lambda: logged_step(run) >= 6 and any(name.endswith(".tmp.ckpt") for name in os.listdir(ckpt))
        process = start(run)
        try:
            kill_when(process, writing)
            break
        except AssertionError:
            if process.poll() is None:
                raise
    else:
        pytest.fail("no kill landed inside a checkpoint write in 3 runs")
    train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert not [name for name in os.listdir(ckpt) if name.endswith(".tmp.ckpt")]  # leftovers cleaned
    assert_same_state(state(run, STEPS), uninterrupted)


def test_resume_before_the_first_checkpoint_restarts_the_same_run(tmp_path, uninterrupted):
    for attempt in range(3):  # the kill must land between step 1 and step 3's checkpoint, a short window
        run = tmp_path / f"run{attempt}"
        kill_when(start(run), lambda: logged_step(run) >= 1)
        if not (run / "ckpt").exists() or not os.listdir(run / "ckpt"):
            break
    else:
        pytest.fail("no kill landed before the first checkpoint in 3 runs")
    result = train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert "no checkpoint yet: resuming from step 0" in result.stdout
    assert_same_state(state(run, STEPS), uninterrupted)


def test_damaged_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, uninterrupted):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "9")  # checkpoints at 6 and 9 (3 rotated away)
    newest = run / "ckpt" / "train_state_00000009.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot: one flipped byte in the middle
    newest.write_bytes(bytes(data))
    result = train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert "train_state_00000009.ckpt" in result.stdout and "trying the previous checkpoint" in result.stdout
    assert "resumed from" in result.stdout and "at step 6" in result.stdout
    assert_same_state(state(run, STEPS), uninterrupted)


def test_truncated_only_checkpoint_is_one_line_and_exit_2(tmp_path):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "3")
    path = run / "ckpt" / "train_state_00000003.ckpt"
    path.write_bytes(path.read_bytes()[:1000])
    result = train("--resume", "--output_path", str(run), check=False)
    assert result.returncode == 2 and "no intact checkpoint to resume from" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.exists()  # nothing of the user's is deleted


def test_rotation_keeps_the_newest_sets_and_never_the_partial_ones(tmp_path):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "10")
    names = sorted(os.listdir(run / "ckpt"))
    assert names == [f"{kind}_{step:08d}.ckpt" for kind in ("discriminator", "generator", "train_state")
                     for step in (9, 10)]


def test_full_disk_while_saving_is_one_line_and_keeps_earlier_checkpoints(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2500k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs to fill (needs root)")
    try:
        run = disk / "run"
        # A checkpoint set of these nets takes 1.6 MB: the first set fits, the second does not.
        result = train(*SMALL, "--output_path", str(run), "--max_steps", "6", "--keep_checkpoint_max", "5",
                       "--sample_interval", "1000", check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot save checkpoint" in lines[0] and "disk full" in lines[0]
        assert (run / "ckpt" / "train_state_00000003.ckpt").exists()
        assert not [n for n in os.listdir(run / "ckpt") if n.endswith(".tmp.ckpt")]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "3")
    config = json.loads((run / "config.json").read_text())
    config["lr"] = config["lr_d"] = 1e20  # absurd learning rates: the weights overflow within a step
    (run / "config.json").write_text(json.dumps(config))
    result = train("--resume", "--output_path", str(run), "--max_steps", "9", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training diverged at step 4" in lines[0], result.stderr
    assert sorted(os.listdir(run / "ckpt"))[-1] == "train_state_00000003.ckpt"
    assert json.loads((run / "status.json").read_text())["state"] == "diverged"


def test_generator_of_another_architecture_is_refused_naming_the_parameter(tmp_path):
    train(*SMALL, "--output_path", str(tmp_path / "big"), "--max_steps", "1", "--image_size", "64")
    result = train(*SMALL, "--output_path", str(tmp_path / "small"), "--max_steps", "1",
                   "--netG", str(tmp_path / "big" / "ckpt" / "generator_00000001.ckpt"), check=False)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "main." in line and "has shape" in line and "this network needs" in line
    assert "Traceback" not in line


def test_a_crafted_pickle_posing_as_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "3")
    (run / "ckpt" / "train_state_00000003.ckpt").write_bytes(pickle.dumps(Payload()))
    (run / "ckpt" / "generator_00000003.ckpt").write_bytes(pickle.dumps(Payload()))
    result = train("--resume", "--output_path", str(run), check=False)
    assert result.returncode == 2 and "no intact checkpoint" in result.stderr
    result = train(*SMALL, "--output_path", str(tmp_path / "other"), "--max_steps", "1",
                   "--netG", str(run / "ckpt" / "generator_00000003.ckpt"), check=False)
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr
    assert not marker.exists()


def test_the_project_never_unpickles():
    """No pickle, no allow_pickle, no eval of strings anywhere in the project's Python: the tools, src/ with every
    package in it, bench/ and tests/ (all but this test, which names what it looks for)."""
    needles = ("import pickle", "allow_pickle=True", "eval(", "exec(")
    offenders, read = [], 0
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or os.path.samefile(path, __file__):
                continue
            read += 1
            with open(path) as f:
                text = f.read().replace("model.eval(", "").replace("_eval(", "")
            offenders += [f"{os.path.relpath(path, ROOT)}: {needle}" for needle in needles if needle in text]
    assert read > 50 and not offenders
