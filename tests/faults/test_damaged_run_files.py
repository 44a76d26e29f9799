"""Every reader of a run directory survives every damaged file: for each file a run holds and each way it can be
damaged (truncated, emptied, random bytes, a non-UTF-8 line, valid JSON of the wrong type, deleted), every tool
(eval.py, eval.py --arithmetic, export.py, calc_metrics.py, report.py, verify.py, train.py --resume) ends with exit
code 0 or 2, never a traceback, and leaves every other file of the run byte-identical (a resume that works is
training, and writes its run as training does).

One small run is trained once and copied per case; the tools run inside the test process (tests/cli.py
run_in_process) so the hundreds of runs do not each pay MindSpore's start-up."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.cli import check, run_in_process, run_tool
from tests.trained_run import SMALL_RUN

NUMBERED = "analysis"  # the run's eval.py --numbered output folder, whose numbered_z.npz --arithmetic reads
FILES = ["config.json", "status.json", "quality.jsonl", "metrics.jsonl", "ckpt/generator_00000002.ckpt",
         "ckpt/discriminator_00000002.ckpt", "ckpt/train_state_00000002.ckpt", f"{NUMBERED}/numbered_z.npz", ".lock"]
DAMAGES = ["truncated", "empty", "random_bytes", "non_utf8", "wrong_json_type", "deleted"]


def damage(path, kind):
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[:max(1, len(data) // 2 - 3)])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(len(data)).integers(0, 256, max(64, len(data)), np.uint8).tobytes())
    elif kind == "non_utf8":
        path.write_bytes(data + b"\xff\xfe\xc3\x28 not text \x80\n")
    elif kind == "wrong_json_type":
        if path.suffix == ".jsonl":
            path.write_bytes(b'[1, 2]\n"text"\n{"step": "two", "source": "train", "primary": 7, "checkpoint": 1}\n'
                             b'{"step": [2], "source": "train", "primary": "swd", "swd": "low", "checkpoint": true}\n')
        else:
            path.write_bytes(b'[{"state": 3}, null]')
    else:
        path.unlink()


def snapshot(run):
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A 2-step digits run with checkpoints at steps 1 and 2, two quality records, numbered samples; and a tiny
    labelled folder for verify.py (3 classes of 12 images: its SVMs fit in a blink)."""
    root = tmp_path_factory.mktemp("damaged")
    run = root / "run"
    check(run_tool("train.py", *SMALL_RUN, "--output_path", run))
    digest = json.loads((run / "config.json").read_text())["data_fingerprint"]["digest"]
    with open(run / "quality.jsonl", "w") as f:
        for step, swd in ((1, 0.4), (2, 0.5)):  # step 1 is the best: eval.py picks it, the tools read the file
            f.write(json.dumps({"step": step, "source": "train", "primary": "swd", "swd": swd, "checkpoint": True,
                                "data": digest}) + "\n")
    check(run_tool("eval.py", "--ckpt_file", run, "--output_path", run / NUMBERED, "--num_images", "4",
                  "--numbered"))
    (run / ".lock").write_text("pid 12345")
    folder = root / "labelled"
    rng = np.random.default_rng(0)
    for label in range(3):
        (folder / f"class{label}").mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(60 + 70 * label, 30, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class{label}" / f"{i}.png")
    return run, folder


def tools(run, out, folder, damaged):
    """(name, script, argv, the run's files it may write) of every tool under test. calc_metrics.py measures
    against the small folder (fast), except when config.json is damaged: then it must fall back on its own."""
    real = [] if damaged == "config.json" else ["--dataset", "folder", "--data_path", folder]
    return [
        ("eval", "eval.py", ["--ckpt_file", run, "--output_path", out / "eval", "--num_images", "4"], ()),
        ("arithmetic", "eval.py", ["--ckpt_file", run, "--output_path", run / NUMBERED, "--arithmetic", "0 - 1 + 2",
                        "--num_images", "4"],
         (f"{NUMBERED}/arithmetic.png", f"{NUMBERED}/generate.png")),  # eval.py always draws generate.png
        ("export", "export.py", ["--ckpt_file", run, "--file_name", out / "g"], ()),
        ("calc_metrics", "calc_metrics.py", ["--ckpt_file", run, "--metrics", "swd", "--num_images", "8", *real],
         ("quality.jsonl",)),
        ("report", "report.py", [run], ("index.html", "report/")),
        ("verify", "verify.py", ["--ckpt_file", run, "--dataset", "folder", "--data_path", folder, "--output_path",
                                 out / "verify", "--jobs", "1"], ()),
    ]


def assert_clean_exit(result, what):
    assert result.returncode in (0, 2), f"{what}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{what}:\n{result.stderr}"
    if result.returncode == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{what}: not one error line:\n{result.stderr}"


def assert_untouched(before, after, damaged, writes, what):
    """Every file of `before` but the damaged one is still there, byte for byte; only `writes` may be new or grow
    (quality.jsonl: calc_metrics.py appends a line)."""
    for name, data in before.items():
        if name == damaged:
            continue
        allowed = any(name == w or (w.endswith("/") and name.startswith(w)) for w in writes)
        assert name in after, f"{what}: {name} was removed"
        if name == "quality.jsonl" and allowed:
            assert after[name].startswith(data), f"{what}: {name} was rewritten, not appended to"
        elif not allowed:
            assert after[name] == data, f"{what}: {name} was changed"
    for name in set(after) - set(before) - {damaged}:
        assert any(name == w or (w.endswith("/") and name.startswith(w)) for w in writes), \
            f"{what}: wrote {name} into the run"


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("damaged", FILES)
def test_every_tool_survives_a_damaged_run_file(base_run, tmp_path, damaged, kind):
    base, folder = base_run
    run = tmp_path / "run"
    shutil.copytree(base, run)
    damage(run / damaged, kind)
    out = tmp_path / "out"
    out.mkdir()
    for name, script, argv, writes in tools(run, out, folder, damaged):
        before = snapshot(run)
        result = run_in_process(script, *argv)
        what = f"{name} with {damaged} {kind}"
        assert_clean_exit(result, what)
        assert_untouched(before, snapshot(run), damaged, writes, what)
    # Last: a resume that fails leaves the run as it was but for its log line and the lock's owner (a resume that
    # works trains, and writes its run as training does).
    before = snapshot(run)
    result = run_in_process("train.py", "--output_path", run, "--resume", "--max_steps", "2")
    assert_clean_exit(result, f"resume with {damaged} {kind}")
    if result.returncode == 2:
        assert_untouched(before, snapshot(run), None, ("train.log", ".lock"), f"refused resume, {damaged} {kind}")
