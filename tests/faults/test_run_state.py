"""A run's state through resume, concurrent use and interrupts: resume is the same run, one trainer per run
directory, and Ctrl-C / SIGTERM save the step they stop at. Real train.py processes throughout."""
import json
import signal
import time

import numpy as np
import pytest

from tests.cli import run_tool, start_tool, train
from tests.faults.test_checkpoint_faults import SMALL, STEPS, assert_same_state, logged_step, state


def config(run):
    return json.loads((run / "config.json").read_text())


def start(run, *extra):
    return start_tool("train.py", *SMALL, "--output_path", run, *extra)


def wait_for(process, condition, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, "training ended too early:\n" + process.communicate()[1][-2000:]
        assert time.time() < deadline, "the awaited point was never reached"
        time.sleep(0.01)


def test_resume_keeps_what_the_command_line_leaves_out_and_logs_what_it_changes(tmp_path):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "2", "--mode", "pynative", "--metrics_interval", "0")
    train("--resume", "--output_path", str(run), "--max_steps", "3", "--log_interval", "3")
    cfg = config(run)
    assert (cfg["mode"], cfg["max_steps"], cfg["log_interval"], cfg["batch_size"]) == ("pynative", 3, 3, 4)
    log = (run / "train.log").read_text()
    assert "resume: max_steps 2 -> 3" in log and "resume: log_interval 1 -> 3" in log


@pytest.mark.parametrize("flag, value, saved", [("--batch_size", "32", "batch_size=4"), ("--ngf", "16", "ngf=8"),
                                                ("--lr", "0.001", "lr=0.0004"),
                                                ("--dataset", "digits", "dataset=fake")])
def test_resume_refuses_to_change_what_defines_the_run(tmp_path, flag, value, saved):
    run = tmp_path / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", "1", "--metrics_interval", "0")
    result = train("--resume", "--output_path", str(run), flag, value, check=False)
    assert result.returncode == 2 and saved in result.stderr and flag in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert config(run)["batch_size"] == 4  # nothing was overwritten


def test_a_second_trainer_is_refused_while_readers_are_safe_and_a_killed_run_leaves_no_lock(tmp_path):
    run = tmp_path / "run"
    first = start(run, "--max_steps", "100000", "--epoch_size", "100000", "--metrics_interval", "0")
    try:
        wait_for(first, lambda: logged_step(run) >= 4)
        second = train("--resume", "--output_path", str(run), check=False)
        assert second.returncode == 2 and "in use by a training process" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        report = run_tool("report.py", run, timeout=300)
        assert report.returncode == 0, report.stderr[-2000:]
        assert first.poll() is None  # the running trainer was not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = train("--resume", "--output_path", str(run), "--max_steps", str(logged_step(run) + 1))
    assert "resumed from" in resumed.stdout  # the kernel dropped the dead run's lock


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    train(*SMALL, "--output_path", str(run), "--max_steps", str(STEPS))
    return state(run, STEPS)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_saves_the_step_and_resume_matches_the_uninterrupted_run(tmp_path, uninterrupted, signum,
                                                                             code):
    run = tmp_path / "run"
    process = start(run, "--max_steps", str(STEPS))
    wait_for(process, lambda: logged_step(run) >= 4)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == code, err[-2000:]
    line = [l for l in out.splitlines() if "interrupted at step" in l][-1]
    step = int(line.split("interrupted at step ")[1].split(" ")[0])
    assert 4 <= step < STEPS and "checkpoint saved; continue with: python train.py --output_path" in line
    assert (run / "ckpt" / f"train_state_{step:08d}.ckpt").is_file()
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"], status["total_steps"]) == ("interrupted", step, STEPS)
    resumed = train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert f"at step {step}" in resumed.stdout
    assert_same_state(state(run, STEPS), uninterrupted)  # bitwise on CPU
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_a_second_interrupt_during_the_save_changes_nothing(tmp_path, uninterrupted):
    run = tmp_path / "run"
    process = start(run, "--max_steps", str(STEPS))
    wait_for(process, lambda: logged_step(run) >= 4)
    process.send_signal(signal.SIGINT)
    for _ in range(20):  # Ctrl-C pressed again and again while the checkpoint is written
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGINT)
        time.sleep(0.005)
    process.communicate(timeout=300)
    assert process.returncode == 130
    train("--resume", "--output_path", str(run), "--max_steps", str(STEPS))
    assert_same_state(state(run, STEPS), uninterrupted)
    assert not np.isnan(state(run, STEPS)["G/main.0.weight"]).any()


def test_ranks_preparing_one_run_directory_at_once_never_trip_over_each_others_probe(tmp_path):
    """Every rank of a distributed run checks that it can write the run directory, at the same moment. With one
    shared probe file name a rank could remove the file another had just written, and that rank then stopped with
    "cannot write to output path" (seen in a two-node msrun test)."""
    import threading
    from src.run import directory
    errors = []

    def prepare_many():
        try:
            for _ in range(300):
                directory.prepare(str(tmp_path / "run"))
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            errors.append(error)

    threads = [threading.Thread(target=prepare_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["samples"]
