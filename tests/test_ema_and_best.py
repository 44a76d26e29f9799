"""The averaged generator (--ema_decay) and the quality tracking that keeps the best checkpoint, through train.py,
eval.py and report.py as a user runs them."""
import json
import os

import numpy as np

from tests.cli import run_tool, train

SMALL = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch_size", "4", "--log_interval", "1"]


def read_state(path):
    import mindspore as ms
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path).items() if not isinstance(v, str)}


def test_ema_update_follows_the_warmed_up_formula():
    import mindspore as ms

    from src.ema import UPDATE_EVERY, GeneratorEMA, decay_at
    from src.generator import Generator

    netG, averaged = Generator(32, 16, 8, 1), Generator(32, 16, 8, 1)
    ema = GeneratorEMA(netG, averaged, decay=0.99)
    rng = np.random.default_rng(0)
    expected = [p.asnumpy().astype(np.float64) for p in netG.trainable_params()]
    kept = 1.0  # the old average's share since the last update: the product of the per-step decays
    for step in range(3 * UPDATE_EVERY + 2):
        values = [rng.standard_normal(p.shape).astype(np.float32) for p in netG.trainable_params()]
        for p, value in zip(netG.trainable_params(), values):  # G moves; the average follows every few steps
            p.set_data(ms.Tensor(value))
        kept *= decay_at(0.99, step)
        if step < UPDATE_EVERY or (step + 1) % UPDATE_EVERY == 0:  # every step at first, then every UPDATE_EVERY
            for e, value in zip(expected, values):
                e *= kept
                e += (1 - kept) * value
            kept = 1.0
        ema.update(step)
        for p, e in zip(averaged.trainable_params(), expected):
            np.testing.assert_allclose(p.asnumpy(), e, rtol=1e-5, atol=1e-6)
    assert decay_at(0.99, 0) == 0.1 and decay_at(0.99, 10_000) == 0.99  # warm-up, then the set decay


def test_ema_leaves_training_unchanged_and_resumes_exactly(tmp_path):
    common = ["--dataset", "fake", "--metrics_interval", "0", *SMALL]
    train(*common, "--output_path", str(tmp_path / "plain"), "--max_steps", "6", "--ema_decay", "0")
    train(*common, "--output_path", str(tmp_path / "ema"), "--max_steps", "6", "--ema_decay", "0.9")
    train(*common, "--output_path", str(tmp_path / "split"), "--max_steps", "4", "--ema_decay", "0.9",
          "--save_checkpoint_steps", "2")
    train("--resume", "--output_path", str(tmp_path / "split"), "--max_steps", "6")
    plain = read_state(str(tmp_path / "plain" / "ckpt" / "train_state_00000006.ckpt"))
    ema = read_state(str(tmp_path / "ema" / "ckpt" / "train_state_00000006.ckpt"))
    split = read_state(str(tmp_path / "split" / "ckpt" / "train_state_00000006.ckpt"))
    # The average never feeds back: G, D and both Adam states are those of the run without it.
    for name in plain:
        if name != "fixed_noise":
            np.testing.assert_array_equal(ema[name], plain[name], err_msg=name)
    # Resumed at step 4, the averaged weights go on exactly.
    assert any(k.startswith("EMA/") for k in ema) and ema.keys() == split.keys()
    for name in ema:
        np.testing.assert_allclose(split[name], ema[name], rtol=1e-6, atol=1e-7, err_msg=name)
    # generator_N.ckpt holds the averaged G (what eval.py and export.py load), not G itself.
    generator = read_state(str(tmp_path / "ema" / "ckpt" / "generator_00000006.ckpt"))
    np.testing.assert_array_equal(generator["main.0.weight"], ema["EMA/main.0.weight"])
    assert not np.array_equal(generator["main.0.weight"], ema["G/main.0.weight"])
    assert float(generator["ema_decay"]) == np.float32(0.9)
    assert "moving average of G" in (tmp_path / "ema" / "train.log").read_text()


def test_training_measures_quality_keeps_the_best_checkpoint_and_eval_uses_it(tmp_path):
    run = tmp_path / "run"
    train("--dataset", "digits", "--output_path", str(run), "--max_steps", "6", "--save_checkpoint_steps", "2",
          "--keep_checkpoint_max", "1", "--metrics_num_images", "200", "--ema_decay", "0.9", *SMALL)
    records = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    primary = records[0]["primary"]
    assert primary == "cfid" and all(r["checkpoint"] and np.isfinite(r[primary]) for r in records)
    assert all(set(r["G"]) >= {"swd", "cfid"} for r in records)  # G itself is measured beside its average
    best = min(records, key=lambda r: r[primary])
    kept = sorted(os.listdir(run / "ckpt"))
    # The newest set (keep 1) and the best one survive rotation.
    assert {f"generator_{s:08d}.ckpt" for s in (6, best["step"])} == {k for k in kept if k.startswith("generator")}
    log = (run / "train.log").read_text()
    assert f"best samples at step {best['step']}" in log and "quality at step 2:" in log

    chosen = run_tool("eval.py", "--ckpt_file", str(run), "--output_path", str(tmp_path / "best"), "--num_images", "4")
    assert chosen.returncode == 0, chosen.stderr
    assert f"generator_{best['step']:08d}.ckpt" in chosen.stdout
    latest = run_tool("eval.py", "--ckpt_file", str(run), "--which", "latest", "--output_path", str(tmp_path / "l"),
                      "--num_images", "4")
    assert latest.returncode == 0 and "generator_00000006.ckpt" in latest.stdout
    one_file = run_tool("export.py", "--ckpt_file", str(run / "ckpt" / "generator_00000006.ckpt"), "--which", "best",
                        "--file_name", str(tmp_path / "g"))
    assert one_file.returncode == 2 and len(one_file.stderr.strip().splitlines()) == 1

    page = (run / "index.html").read_text()
    assert f"Best samples at step {best['step']}" in page and (run / "report" / "quality.png").is_file()


def test_which_best_without_measurements_is_one_line_and_exit_2(tmp_path):
    run = tmp_path / "run"
    train("--dataset", "fake", "--output_path", str(run), "--max_steps", "2", "--metrics_interval", "0", *SMALL)
    result = run_tool("eval.py", "--ckpt_file", str(run), "--which", "best", "--output_path", str(tmp_path / "out"))
    assert result.returncode == 2 and "no best one" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    default = run_tool("eval.py", "--ckpt_file", str(run), "--output_path", str(tmp_path / "out"), "--num_images", "2")
    assert default.returncode == 0 and "generator_00000002.ckpt" in default.stdout  # no best known: the latest
