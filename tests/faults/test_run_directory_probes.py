"""A user with bad luck, through the real command-line tools: runs moved, copied and resumed on other data, damaged
run files, impossible inputs, feature models that fail, output paths of the wrong kind and a full disk. Each test
is one probe that once failed (a traceback, a hang, a run trained over, a folder's permissions changed)."""
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.cli import assert_user_error, check, run_tool, train, user_env
from tests.conftest import ROOT
from tests.trained_run import SMALL_RUN

STEPS = ["--max_steps", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step digits run (checkpoints at steps 1 and 2), copied by each test that changes it."""
    run = tmp_path_factory.mktemp("probes") / "run"
    train(*SMALL_RUN, "--output_path", str(run))
    return run


def copy_of(trained, tmp_path, name="run"):
    target = tmp_path / name
    shutil.copytree(trained, target)
    return target


def config(run):
    return json.loads((run / "config.json").read_text())


def image_folder(path, count, seed, classes=1):
    """`count` 32 px grey PNGs under `path` (in `classes` class sub-folders)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = path / f"c{i % classes}" if classes > 1 else path
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32), np.uint8)).save(folder / f"{i:03d}.png")
    return path


def assert_no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


# -- run identity --------------------------------------------------------------------------------------------------

def test_a_moved_copied_or_relative_run_resumes_in_place_and_never_writes_elsewhere(trained, tmp_path):
    moved = tmp_path / "runs" / "b"
    moved.parent.mkdir()
    shutil.move(str(copy_of(trained, tmp_path, "a")), str(moved))
    result = train("--output_path", str(moved), "--resume", "--max_steps", "3")
    assert "resumed from" in result.stdout and "resuming from step 0" not in result.stdout
    assert not (tmp_path / "a").exists()  # the old location is not recreated
    assert (moved / "ckpt" / "generator_00000003.ckpt").exists() and config(moved)["output_path"] == str(moved)

    original = copy_of(trained, tmp_path, "original")
    before = sorted(os.listdir(original / "ckpt"))
    duplicate = tmp_path / "duplicate"
    shutil.copytree(original, duplicate)
    train("--output_path", str(duplicate), "--resume", "--max_steps", "3")
    assert sorted(os.listdir(original / "ckpt")) == before  # nothing written into the original
    assert (duplicate / "ckpt" / "generator_00000003.ckpt").exists()

    # A relative --output_path, from another working directory.
    elsewhere = tmp_path / "cwd"
    (elsewhere / "runs").mkdir(parents=True)
    shutil.copytree(trained, elsewhere / "runs" / "rel")
    check(run_tool("train.py", "--output_path", "runs/rel", "--resume", "--max_steps", "3", cwd=elsewhere))
    assert (elsewhere / "runs" / "rel" / "ckpt" / "generator_00000003.ckpt").exists()


def test_resuming_on_other_data_is_refused_unless_allowed_and_then_the_best_checkpoint_comparison_restarts(tmp_path):
    first, other = image_folder(tmp_path / "first", 24, 0), image_folder(tmp_path / "other", 30, 1)
    run = tmp_path / "run"
    train("--dataset", "folder", "--data_path", str(first), "--output_path", str(run), "--batch_size", "4",
          "--ngf", "8", "--ndf", "8", "--nz", "16", "--max_steps", "1", "--metrics_interval", "0")
    saved = config(run)["data_fingerprint"]
    assert saved["files"] == 24
    # A measurement against the first data, at the kept checkpoint: eval.py --which best can use it.
    with open(run / "quality.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "source": "train", "primary": "swd", "swd": 0.1, "checkpoint": True,
                            "data": saved["digest"]}) + "\n")
    check(run_tool("eval.py", "--ckpt_file", str(run), "--which", "best", "--output_path", str(tmp_path / "e1"),
                   "--num_images", "2"))

    refused = train("--output_path", str(run), "--resume", "--data_path", str(other), "--max_steps", "2", check=False)
    assert_user_error(refused, str(first))
    assert str(other) in refused.stderr and "--allow_data_change" in refused.stderr
    assert config(run)["data_fingerprint"] == saved

    train("--output_path", str(run), "--resume", "--data_path", str(other), "--max_steps", "2", "--allow_data_change")
    cfg = config(run)
    assert cfg["data_fingerprint"]["files"] == 30 and cfg["data_changes"][0]["from"] == saved
    # The measurement against the old data no longer names a best checkpoint.
    no_best = run_tool("eval.py", "--ckpt_file", str(run), "--which", "best", "--output_path", str(tmp_path / "e2"))
    assert_user_error(no_best, "no sample-quality measurement")


# -- damaged run files ---------------------------------------------------------------------------------------------

def test_a_non_utf8_line_in_quality_jsonl_is_skipped_with_a_warning_by_every_reader(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    with open(run / "quality.jsonl", "ab") as f:
        f.write(b"\xff\xfe broken \x80\n")
    for tool, args in (("eval.py", ["--ckpt_file", str(run), "--output_path", str(tmp_path / "e"),
                                    "--num_images", "2"]),
                       ("report.py", [str(run)]),
                       ("calc_metrics.py", ["--ckpt_file", str(run), "--metrics", "swd", "--num_images", "8"])):
        result = run_tool(tool, *args)
        assert result.returncode == 0, f"{tool}: {result.stderr}"
        assert_no_traceback(result)
        assert "unreadable line" in result.stderr, tool


def test_a_non_utf8_line_in_metrics_jsonl_does_not_stop_a_resume(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe broken \x80\n")
    result = train("--output_path", str(run), "--resume", "--max_steps", "3")
    assert "resumed from" in result.stdout
    assert_no_traceback(result)


@pytest.mark.parametrize("content", ["[]", "{}", '{"dataset": 7, "image_size": "32"}'])
def test_a_config_json_of_the_wrong_shape_refuses_resume_in_one_line(trained, tmp_path, content):
    run = copy_of(trained, tmp_path)
    (run / "config.json").write_text(content)
    before = sorted(os.listdir(run / "ckpt"))
    result = train("--output_path", str(run), "--resume", check=False)
    assert_user_error(result, "config.json")
    assert (run / "config.json").read_text() == content and sorted(os.listdir(run / "ckpt")) == before


def test_a_record_appended_after_a_torn_last_line_stays_readable(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    (run / "quality.jsonl").write_text('{"step": 1, "source": "train", "primary": "swd", "sw')  # a torn write
    check(run_tool("calc_metrics.py", "--ckpt_file", str(run), "--metrics", "swd", "--num_images", "8"))
    lines = (run / "quality.jsonl").read_text().splitlines()
    assert len(lines) == 2 and lines[0].endswith('"sw')
    assert json.loads(lines[1])["source"] == "calc_metrics"


def test_a_truncated_numbered_z_is_one_line_for_arithmetic(trained, tmp_path):
    out = tmp_path / "analysis"
    check(run_tool("eval.py", "--ckpt_file", str(trained), "--output_path", str(out), "--num_images", "4",
                   "--numbered"))
    data = (out / "numbered_z.npz").read_bytes()
    (out / "numbered_z.npz").write_bytes(data[:len(data) // 2])
    result = run_tool("eval.py", "--ckpt_file", str(trained), "--output_path", str(out), "--arithmetic", "0 - 1 + 2")
    assert_user_error(result, "numbered_z.npz")


# -- inputs --------------------------------------------------------------------------------------------------------

def test_a_negative_seed_is_refused_by_eval_and_calc_metrics(trained, tmp_path):
    for tool in ("eval.py", "calc_metrics.py"):
        result = run_tool(tool, "--ckpt_file", str(trained), "--output_path" if tool == "eval.py" else "--metrics",
                          str(tmp_path / "e") if tool == "eval.py" else "swd", "--seed", "-1")
        assert_user_error(result, "--seed")


def test_counts_beyond_memory_are_refused_with_the_memory_they_need(trained, tmp_path):
    out = str(tmp_path / "e")
    for tool, args in (("eval.py", ["--output_path", out, "--num_images", "100000000000"]),
                       ("eval.py", ["--output_path", out, "--num_images", "100000000", "--batch_size", "1000000000"]),
                       ("calc_metrics.py", ["--metrics", "swd", "--num_images", "100000000000"])):
        result = run_tool(tool, "--ckpt_file", str(trained), *args)
        assert_user_error(result, "GB of memory")
        assert "needs ~" in result.stderr
    assert not os.path.exists(out)
    # A batch larger than the images asked for is only padding: it works.
    check(run_tool("eval.py", "--ckpt_file", str(trained), "--output_path", out, "--batch_size", "1000000000"))


def test_train_refuses_a_metrics_num_images_beyond_memory_before_creating_the_run(tmp_path):
    run = tmp_path / "run"
    result = train("--output_path", str(run), "--metrics_num_images", "100000000000", check=False)
    assert_user_error(result, "--metrics_num_images 100000000000 needs ~")
    assert not run.exists()


def test_verify_names_the_fewest_labels_its_validation_split_takes_and_accepts_them(trained, tmp_path):
    for count in ("20", "45"):
        result = run_tool("verify.py", "--ckpt_file", str(trained), "--num_labels", count, "--output_path",
                          str(tmp_path / "v"), "--jobs", "1")
        assert_user_error(result, f"--num_labels {count} is too few for 10 classes")
        assert "at least 46" in result.stderr
    ok = check(run_tool("verify.py", "--ckpt_file", str(trained), "--num_labels", "46", "--output_path",
                        str(tmp_path / "v"), "--jobs", "1"))
    assert json.loads(ok.stdout.strip().splitlines()[-1])["num_labels"] == 46


# -- user-supplied feature models ----------------------------------------------------------------------------------

def onnx_model(path, build):
    """An ONNX feature model (opset 13) whose graph `build(helper, TensorProto)` returns as (nodes, input, inits)."""
    import onnx
    from onnx import TensorProto, helper

    nodes, graph_input, initializers = build(helper, TensorProto)
    output = helper.make_tensor_value_info("features", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "features", [graph_input], [output], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def float_input(helper, TensorProto):
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, 32, 32])


def uint8_model(helper, TensorProto):
    graph_input = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 1, 32, 32])
    return ([helper.make_node("Cast", ["images"], ["cast"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["cast"], ["features"])], graph_input, [])


def bad_reshape_model(helper, TensorProto):
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [7, -1])  # 64 images of 1,024 values: not by 7
    return [helper.make_node("Reshape", ["images", "shape"], ["features"])], float_input(helper, TensorProto), [shape]


def nan_model(helper, TensorProto):
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    return ([helper.make_node("Sub", ["images", "two"], ["shifted"]),
             helper.make_node("Sqrt", ["shifted"], ["root"]),  # images are in [-1, 1]: the root of a negative
             helper.make_node("Flatten", ["root"], ["features"])], float_input(helper, TensorProto), [two])


@pytest.mark.parametrize("build, message", [(uint8_model, "tensor(uint8)"), (bad_reshape_model, "failed on a batch"),
                                            (nan_model, "the feature model returned NaN for")])
def test_a_feature_model_that_fails_or_returns_nan_is_one_line(trained, tmp_path, build, message):
    model = onnx_model(tmp_path / "features.onnx", build)
    run = copy_of(trained, tmp_path)
    before = (run / "quality.jsonl").read_bytes() if (run / "quality.jsonl").exists() else None
    result = run_tool("calc_metrics.py", "--ckpt_file", str(run), "--metrics", "fid", "--num_images", "16",
                      "--feature_model", model, timeout=300)  # NaN features once hung in sqrtm for over 10 minutes
    assert_user_error(result, message)
    after = (run / "quality.jsonl").read_bytes() if (run / "quality.jsonl").exists() else None
    assert after == before


# -- output paths --------------------------------------------------------------------------------------------------

def test_verify_refuses_an_output_path_that_is_a_file_before_fitting_anything(trained, tmp_path):
    target = tmp_path / "results"
    target.write_text("keep me")
    result = run_tool("verify.py", "--ckpt_file", str(trained), "--output_path", str(target))
    assert_user_error(result, "is an existing file")
    assert result.stdout == "" and target.read_text() == "keep me"


def test_export_refuses_a_directory_as_file_name_and_leaves_its_mode(trained, tmp_path):
    folder = tmp_path / "model.mindir"
    folder.mkdir()
    os.chmod(folder, 0o755)
    result = run_tool("export.py", "--ckpt_file", str(trained), "--file_name", str(tmp_path / "model"))
    assert_user_error(result, "is an existing directory")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755


def test_export_never_changes_the_permissions_of_the_folder_it_writes_into(trained, tmp_path):
    shared = tmp_path / "shared_dir"
    shared.mkdir()
    os.chmod(shared, 0o755)
    for fmt in ("ONNX", "MINDIR"):
        check(run_tool("export.py", "--ckpt_file", str(trained), "--file_format", fmt, "--file_name",
                       str(shared / "g")))
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755, fmt
    assert sorted(os.listdir(shared)) == ["g.mindir", "g.onnx"]  # no temporary folder left behind


# -- file system ---------------------------------------------------------------------------------------------------

def test_a_full_disk_while_saving_leaves_no_partial_checkpoint_and_status_says_failed(tmp_path):
    run = tmp_path / "run"
    # ulimit -f in 1 KiB blocks: the generator (~230 KB) and D checkpoints fit, the training state (~1.4 MB) does
    # not. Python ignores SIGXFSZ, so the write fails with EFBIG as on a full disk.
    command = " ".join([f"ulimit -f 600; exec {sys.executable} train.py", *SMALL_RUN, "--output_path", str(run)])
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=user_env(), capture_output=True, text=True,
                            timeout=600)
    assert_user_error(result, "cannot save checkpoint")
    leftovers = [name for name in os.listdir(run / "ckpt") if ".tmp" in name]
    assert leftovers == [], leftovers
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "cannot save checkpoint" in status["reason"], status
