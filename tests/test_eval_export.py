"""eval.py, export.py and infer.py end to end on a checkpoint written by train.py: real processes, real files."""
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from tests.cli import assert_user_error, check, run_tool, user_env
from tests.trained_run import small_digits_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return small_digits_run(tmp_path_factory)


def ckpt(run_dir, kind, step):
    return run_dir / "ckpt" / f"{kind}_{step:08d}.ckpt"


def npz_images(folder):
    with np.load(folder / "images.npz") as data:
        return data["images"]


@pytest.fixture(scope="module")
def generated(run_dir, tmp_path_factory):
    """Four eval.py runs, shared by the generation tests (each costs a MindSpore start-up)."""
    out = tmp_path_factory.mktemp("eval")
    runs = {
        # the newest generator named explicitly, small batches (the last one padded)
        "step2": ["--ckpt_file", ckpt(run_dir, "generator", 2), "--seed", "7", "--batch_size", "4"],
        # the run directory, default batch size: must be the same images
        "run_dir": ["--ckpt_file", run_dir, "--seed", "7"],
        # the older generator, same seed: must differ; and the latent walk
        "step1": ["--ckpt_file", ckpt(run_dir, "generator", 1), "--seed", "7", "--interpolate", "3"],
    }
    for name, args in runs.items():
        check(run_tool("eval.py", *args, "--num_images", "10", "--format", "npz", "--output_path", out / name))
    check(run_tool("eval.py", "--ckpt_file", run_dir, "--seed", "8", "--num_images", "5", "--format", "png",
                   "--output_path", out / "png"))
    return out


def test_npz_holds_uint8_images_in_nhwc_and_a_grid_is_always_written(generated):
    images = npz_images(generated / "step2")
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 1)  # digits: one channel
    assert (generated / "step2" / "generate.png").is_file()


def test_same_seed_gives_same_images_whatever_the_batch_size(generated):
    np.testing.assert_array_equal(npz_images(generated / "step2"), npz_images(generated / "run_dir"))


def test_run_directory_means_its_newest_generator(generated):
    """run_dir == generator_00000002 (above), and the step-1 generator draws other images from the same noise."""
    assert not np.array_equal(npz_images(generated / "step1"), npz_images(generated / "run_dir"))


def test_png_format_writes_one_file_per_image_and_another_seed_gives_other_images(generated):
    files = sorted((generated / "png" / "images").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    first = np.asarray(Image.open(files[0]))
    assert first.shape == (32, 32) and first.dtype == np.uint8
    assert not np.array_equal(first, npz_images(generated / "run_dir")[0, :, :, 0])  # seed 8 vs seed 7


def test_interpolate_writes_a_grid_of_k_walks(generated):
    grid = Image.open(generated / "step1" / "interpolate.png")
    tile = 32 + 2  # image + border (src/outputs/visuals.py)
    columns = 10  # src.outputs.generate.INTERPOLATION_STEPS
    assert grid.size == (columns * tile + 2, 3 * tile + 2)


def test_latent_walks_are_straight_lines_between_two_random_points():
    from src.outputs.generate import walk_latents
    z = walk_latents(seed=3, rows=2, steps=5, nz=4).reshape(2, 5, 4)
    steps = np.diff(z, axis=1)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[:, :1], steps.shape), atol=1e-6)  # even steps
    assert not np.allclose(z[0, 0], z[0, -1]) and not np.allclose(z[0], z[1])


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """G as MINDIR and ONNX, D's feature extractor as MINDIR, all with batch size 4."""
    out = tmp_path_factory.mktemp("export")
    for net, fmt in (("G", "MINDIR"), ("G", "ONNX"), ("D", "MINDIR")):
        result = check(run_tool("export.py", "--ckpt_file", run_dir, "--net", net, "--file_format", fmt,
                                "--file_name", out / f"dcgan_{net}", "--batch_size", "4"))
        assert f"dcgan_{net}.{fmt.lower()}" in result.stdout
    return out


def eager_networks(run_dir):
    """G and the D feature extractor rebuilt from the checkpoints, run eagerly in this process."""
    from src.run import trained
    from src.evaluation.representation import FeatureExtractor
    netG, _, _ = trained.load(str(run_dir), "G")
    netD, arch, _ = trained.load(str(run_dir), "D")
    return netG, FeatureExtractor(netD, arch["image_size"])


def test_mindir_reloads_with_graphcell_and_matches_the_eager_network(run_dir, exported):
    import mindspore as ms
    import mindspore.nn as nn

    netG, extractor = eager_networks(run_dir)
    rng = np.random.default_rng(0)
    cases = {"G": (netG, rng.standard_normal((4, 16, 1, 1))), "D": (extractor, rng.uniform(-1, 1, (4, 1, 32, 32)))}
    for net, (eager, x) in cases.items():
        x = ms.Tensor(x.astype(np.float32))
        graph = nn.GraphCell(ms.load(str(exported / f"dcgan_{net}.mindir")))
        expected = eager(x).asnumpy()
        assert graph(x).shape == expected.shape
        np.testing.assert_allclose(graph(x).asnumpy(), expected, atol=1e-5, rtol=0, err_msg=net)
    assert expected.shape == (4, (16 + 32 + 64) * 16)  # every D stage max-pooled to 4x4


def test_infer_generates_from_the_mindir_alone(exported, generated, tmp_path):
    """A copy of the MINDIR in an empty folder, run from there: the same images eval.py drew with the checkpoint."""
    alone = tmp_path / "deploy"
    alone.mkdir()
    shutil.copy(exported / "dcgan_G.mindir", alone / "g.mindir")
    result = check(run_tool("infer.py", "--mindir", "g.mindir", "--seed", "7", "--num_images", "10",
                            "--format", "npz", "--output_path", "out", cwd=alone))
    assert "input [4, 16, 1, 1]" in result.stdout
    images = npz_images(alone / "out")
    assert images.shape == (10, 32, 32, 1)
    assert np.abs(images.astype(int) - npz_images(generated / "run_dir")).max() <= 1  # rounding at a level edge


def test_onnx_loads_in_onnxruntime_and_matches_mindspore(run_dir, exported):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test dependency (requirements.txt)")
    import onnx
    import mindspore as ms

    model = onnx.load(str(exported / "dcgan_G.onnx"))
    for node in model.graph.node:
        if node.op_type == "ConvTranspose":  # the attribute onnxruntime rejects is gone
            assert all(a.name != "output_shape" or len(a.ints) == 2 for a in node.attribute)
    session = ort.InferenceSession(str(exported / "dcgan_G.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["nz"] == "16"
    z = np.random.default_rng(1).standard_normal((4, 16, 1, 1)).astype(np.float32)
    netG, _ = eager_networks(run_dir)
    (output,) = session.run(None, {session.get_inputs()[0].name: z})
    np.testing.assert_allclose(output, netG(ms.Tensor(z)).asnumpy(), atol=1e-4, rtol=0)


def test_air_off_ascend_is_one_line_and_exit_code_2(run_dir, tmp_path):
    result = run_tool("export.py", "--ckpt_file", run_dir, "--file_format", "AIR", "--file_name", tmp_path / "g")
    assert_user_error(result, "AIR export needs an Ascend device")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--net", "generator"], "argument --net: invalid choice: 'generator'"),
    (["--net", "D", "--ckpt_file", "{ckpt}/generator_00000002.ckpt"], "is a generator checkpoint"),
    (["--file_format", "PB"], "argument --file_format: invalid choice"),
])
def test_export_flags_are_real_choices(run_dir, tmp_path, args, message):
    args = [a.format(ckpt=run_dir / "ckpt") for a in args]
    if "--ckpt_file" not in args:
        args += ["--ckpt_file", str(run_dir)]
    assert_user_error(run_tool("export.py", *args, "--file_name", tmp_path / "x"), message)


def save_generator_64px(path, record_architecture):
    """A 64 px generator checkpoint as train.py writes it, or (record_architecture=False) weights only."""
    from src.run.checkpoint import as_save_list, atomic_save, network_entries
    from src.generator import Generator

    arch = {"net": "G", "image_size": 64, "nz": 16, "ngf": 8, "nc": 1}
    atomic_save(as_save_list(network_entries(Generator(64, 16, 8, 1))), str(path),
                append_dict=arch if record_architecture else None)
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "checkpoint not found"),
    ("empty_dir", "no generator_*.ckpt"),
    ("discriminator", "is a discriminator checkpoint"),
    ("64px_recorded", "holds a generator with image_size=64, but --image_size 32 was given"),
    ("64px_weights_only", "a checkpoint of another image size"),
])
def test_bad_checkpoints_are_one_line_and_exit_code_2(run_dir, tmp_path, case, message):
    extra = []
    if case == "missing":
        path = tmp_path / "nope.ckpt"
    elif case == "empty_dir":
        path = tmp_path
    elif case == "discriminator":
        path = ckpt(run_dir, "discriminator", 2)
    else:
        path = save_generator_64px(tmp_path / "g64.ckpt", record_architecture=case == "64px_recorded")
        extra = ["--image_size", "32"] + (["--nz", "16", "--ngf", "8", "--nc", "1"] if "weights" in case else [])
    result = run_tool("eval.py", "--ckpt_file", path, "--output_path", tmp_path / "out", *extra)
    assert_user_error(result, message)


def test_run_eval_script_passes_extra_options_to_eval(run_dir, tmp_path):
    """bash scripts/run_eval.sh IMG CKPT [DEVICE_TARGET] [eval.py options]: relative paths are the caller's."""
    check(run_tool("scripts/run_eval.sh", "img", run_dir, "CPU", "--num_images", 4, "--format", "npz", cwd=tmp_path,
                   env=user_env(PYTHON=sys.executable)))
    assert npz_images(tmp_path / "img").shape == (4, 32, 32, 1)
