"""status.json and quality.jsonl tell the truth about a run that hit trouble: a quality measurement that fails is
recorded and retried (the run goes on), and a run that ends on a user-fixable failure says `failed` and why."""
import json

import pytest

from src.errors import UserError

SMALL = ["--dataset", "fake", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--log_interval", "1",
         "--fast_cpu", "off"]


def small_trainer(tmp_path, *extra):
    from src.config import parse_train_args, resolve_train_config
    from src.trainer import Trainer
    cfg = resolve_train_config(parse_train_args([*SMALL, "--output_path", str(tmp_path / "run"), *extra]))
    return Trainer(cfg)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failing_quality_measurement_is_recorded_retried_and_stops_after_three(tmp_path, monkeypatch):
    import src.evaluation as evaluation
    from src.report import render_report

    def broken_judge(*args, **kwargs):
        raise MemoryError("cannot allocate the reference features")

    monkeypatch.setattr(evaluation, "QualityJudge", broken_judge)
    trainer = small_trainer(tmp_path, "--max_steps", "5", "--save_checkpoint_steps", "1", "--metrics_interval", "1")
    assert trainer.run() == 5  # training is not ended by the measurement
    run = tmp_path / "run"
    failures = read_lines(run / "quality.jsonl")
    assert [r["step"] for r in failures] == [1, 2, 3]  # tried at every interval until the third failure in a row
    assert all("MemoryError: cannot allocate the reference features" == r["error"] for r in failures)
    assert [r["stopped"] for r in failures] == [False, False, True]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and "MemoryError" in status["quality_error"] and status["best_step"] is None
    page = (run / "index.html").read_text() if (run / "index.html").exists() else open(render_report(str(run))).read()
    assert "The measurement at step 3 failed" in page and "measuring stopped for the run" in page


def test_a_run_ended_by_a_user_fixable_failure_says_failed_and_why(tmp_path, monkeypatch):
    from src.run import checkpoint

    def full_disk(*args, **kwargs):
        raise UserError("cannot save a checkpoint: No space left on device")

    trainer = small_trainer(tmp_path, "--max_steps", "3", "--save_checkpoint_steps", "2", "--metrics_interval", "0")
    monkeypatch.setattr(checkpoint, "save_training_checkpoint", full_disk)
    with pytest.raises(UserError):
        trainer.run()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 2
    assert status["reason"] == "cannot save a checkpoint: No space left on device"


def test_the_report_skips_a_checkpoint_rotated_away_between_listing_and_reading(tmp_path, monkeypatch):
    """report.py polls a run whose trainer removes old checkpoints: a file listed, then gone, is left out."""
    import src.report.run_reader as run_reader

    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "fake", "batch_size": 4}))
    (run / "ckpt" / "generator_00000002.ckpt").write_bytes(b"x" * 10)
    listed = [str(run / "ckpt" / "generator_00000001.ckpt"), str(run / "ckpt" / "generator_00000002.ckpt")]
    monkeypatch.setattr(run_reader.glob, "glob", lambda pattern: list(listed))  # step 1 rotated after the listing
    assert run_reader.read_run(str(run))["checkpoints"] == [("generator_00000002.ckpt", 10)]


@pytest.mark.parametrize("key, value", [("ema_decay", None), ("amp_level", "O3"), ("amp_level", 5)])
def test_a_config_json_damaged_in_its_precision_or_ema_is_one_line_on_resume(tmp_path, key, value):
    """A saved setting of the right JSON type but an impossible value is refused before any work, or read as
    its meaning (an EMA of null is off), never a TypeError."""
    from src.config import parse_train_args, resolve_train_config, resume_config
    cfg = resolve_train_config(parse_train_args([*SMALL, "--output_path", str(tmp_path / "run")]))
    saved = dict(cfg, **{key: value})
    args = parse_train_args(["--resume", "--output_path", str(tmp_path / "run")])
    if key == "ema_decay":
        assert resume_config(saved, args)[0]["ema_decay"] is None
    else:
        with pytest.raises(UserError, match="amp_level"):
            resume_config(saved, args)


def test_the_report_names_the_best_checkpoints_own_metric_when_the_latest_uses_another(tmp_path):
    from src.report import render_report

    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "fake", "batch_size": 4}))
    (run / "ckpt" / "generator_00000002.ckpt").write_bytes(b"x")
    records = [{"step": 2, "source": "train", "checkpoint": True, "primary": "cfid", "cfid": 3.5},
               {"step": 4, "source": "train", "checkpoint": False, "primary": "swd", "swd": 20.0}]
    (run / "quality.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    page = open(render_report(str(run)), encoding="utf-8").read()
    assert "Best samples at step 2</b> (cfid 3.5)" in page
