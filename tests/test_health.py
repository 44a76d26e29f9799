"""Collapse and divergence are told when they happen (src/evaluation/health.py), once per episode, with what to
try; status.json and the report show them; the best checkpoint is not touched."""
import json

from src.evaluation.health import SATURATION_STEPS, TrainingHealth


def record(step, d_x=0.7, d_g_z=0.3, loss_d=1.2, loss_g=1.0):
    return {"step": step, "d_x": d_x, "d_g_z1": d_g_z, "loss_d": loss_d, "loss_g": loss_g}


def test_a_saturated_discriminator_is_told_once_after_it_lasts_and_again_after_recovering():
    health = TrainingHealth()
    assert health.check_step(record(50)) == []
    told = [m for step in range(100, 100 + SATURATION_STEPS + 51, 50)
            for m in health.check_step(record(step, d_x=0.999, d_g_z=0.001))]
    assert len(told) == 1 and "D has saturated since step 100" in told[0] and "--lr_d" in told[0]
    assert health.check_step(record(400)) == []  # recovered
    again = [m for step in range(450, 450 + SATURATION_STEPS + 1, 50)
             for m in health.check_step(record(step, d_x=0.995, d_g_z=0.002))]
    assert len(again) == 1 and [f["kind"] for f in health.findings] == ["saturated", "saturated"]


def test_exploding_losses_are_told_but_a_noisy_loss_is_not():
    health = TrainingHealth()
    for step in range(1, 20):
        assert health.check_step(record(step, loss_g=1.0 + 0.5 * (step % 3))) == []  # noise of ordinary training
    told = health.check_step(record(20, loss_g=40.0))
    assert len(told) == 1 and told[0].startswith("loss_g is exploding: 40 at step 20")
    assert health.check_step(record(21, loss_g=45.0)) == []  # the same episode is said once


def test_sharply_worse_quality_is_told_after_consecutive_measurements_and_the_best_is_kept():
    health = TrainingHealth()
    best = {"step": 100, "primary": "cfid", "cfid": 5.0}
    assert health.check_quality(best, best) == []
    assert health.check_quality({"step": 200, "primary": "cfid", "cfid": 12.0}, best) == []  # once may be noise
    told = health.check_quality({"step": 300, "primary": "cfid", "cfid": 15.0}, best)
    assert len(told) == 1 and "best 5 at step 100" in told[0] and "best checkpoint is kept" in told[0]
    assert best == {"step": 100, "primary": "cfid", "cfid": 5.0}


def test_status_json_and_the_report_show_the_warnings(tmp_path):
    from src.report import render_report
    from src.run import directory as rundir

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "fake", "batch_size": 4}))
    health = TrainingHealth()
    health.check_step(record(1))
    health.check_step(record(2, loss_d=30.0))
    rundir.write_status(str(run), "running", 2, 10, 0.0, health=health.findings)
    assert json.loads((run / "status.json").read_text())["health"][0]["kind"] == "exploding_loss_d"
    page = open(render_report(str(run)), encoding="utf-8").read()
    assert "Step 2: loss_d is exploding" in page
