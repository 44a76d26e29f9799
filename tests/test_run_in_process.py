"""A small run trained in this process, then read back as eval.py, export.py, verify.py and `train.py --resume` read
it, all in-process: the resumed configuration (src/config.py), the checkpoints (src/run/checkpoint.py), the
networks of a run directory (src/run/trained.py), images and exports (src/outputs/) and the analysis commands
(src/analysis/commands.py). The tools themselves, as processes, are tested in tests/test_eval_export.py,
tests/test_analysis.py and tests/test_train.py."""
import json
import os
import shutil

import numpy as np
import pytest

from src.errors import UserError
from tests import fixtures

SMALL = ["--dataset", "digits", "--max_steps", "2", "--save_checkpoint_steps", "1", "--batch_size", "4", "--ngf", "8",
         "--ndf", "8", "--nz", "16", "--log_interval", "1", "--metrics_interval", "0", "--fast_cpu", "off"]
G_ARCH = {"net": "G", "image_size": 32, "nz": 16, "ngf": 8, "nc": 1}


def train_in_process(argv):
    from src.config import parse_train_args, resolve_train_config, resume_config
    from src.run.directory import read_config
    from src.trainer import Trainer

    args = parse_train_args(argv)
    cfg = resume_config(read_config(args.output_path), args)[0] if args.resume else resolve_train_config(args)
    return Trainer(cfg).run()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step digits run (checkpoints at steps 1 and 2, no quality measurement) as train.py writes it."""
    run_dir = str(tmp_path_factory.mktemp("in_process") / "run")
    assert train_in_process([*SMALL, "--output_path", run_dir]) == 2
    return run_dir


@pytest.fixture
def run_copy(run, tmp_path):
    """A copy of the run a test may change."""
    return shutil.copytree(run, str(tmp_path / "run"))


def forward_of(net):
    import mindspore as ms
    return lambda z: net(ms.Tensor(z)).asnumpy()


# ---- src/config.py: what --resume keeps and what it may change ----

def test_a_resumed_run_keeps_its_settings_and_takes_only_the_resumable_changes(run):
    from src.config import parse_train_args, resume_config
    from src.run.directory import read_config

    saved = read_config(run)
    cfg, changes = resume_config(saved, parse_train_args(["--resume", "--output_path", run, "--max_steps", "5",
                                                          "--ngf", "8"]))
    assert (cfg["max_steps"], cfg["ngf"], cfg["nz"], cfg["resume"]) == (5, 8, 16, True)
    assert changes == ["resume: max_steps 2 -> 5"]
    for flags, message in [(["--ngf", "16"], "--ngf 16 cannot change when resuming: this run has ngf=8"),
                           (["--netG", "g.ckpt"], "--netG warm-starts a new run"),
                           (["--log_interval", "0"], "--log_interval must be at least 1")]:
        with pytest.raises(UserError, match=message):
            resume_config(saved, parse_train_args(["--resume", "--output_path", run, *flags]))


@pytest.mark.parametrize("change, message", [
    ({"image_size": 48}, "image size 48 is not supported"),
    ({"nc": 2}, "--nc must be 1 or 3"),
    ({"batch_size": 0}, "--batch_size must be at least 1"),
    ({"max_steps": -1}, "--max_steps must be 0"),
    ({"ema_decay": 1.0}, "--ema_decay must be in"),
    ({"lr": 0.0}, "need --lr > 0"),
    ({"dataset": "folder", "data_path": None}, "dataset 'folder' needs --data_path"),
])
def test_a_setting_out_of_range_is_refused_by_name(change, message):
    from src.config import check_config, parse_train_args, resolve_train_config

    cfg = resolve_train_config(parse_train_args(["--dataset", "fake"]))
    with pytest.raises(UserError, match=message):
        check_config(dict(cfg, **change))


# ---- src/run/checkpoint.py and the trainer's resume ----

def test_checkpoints_record_the_architecture_and_the_newest_training_state(run):
    from src.run import checkpoint
    from src.run.directory import read_config

    assert checkpoint.saved_steps(run) == checkpoint.saved_steps(run, "generator") == [1, 2]
    ema_decay = read_config(run)["ema_decay"]  # the default: generator_N.ckpt holds the averaged G
    assert checkpoint.network_architecture(checkpoint.ckpt_path(run, "generator", 2)) == \
        dict(G_ARCH, ema_decay=ema_decay)
    state = checkpoint.read_checkpoint(checkpoint.latest_training_state(run, warn=pytest.fail))
    assert int(state["step"].asnumpy()) == 2 and state["fixed_noise"].shape[1:] == (16, 1, 1)


def test_resume_continues_from_the_newest_checkpoint(tmp_path):
    """Its own run: a resumed run writes to the run directory its config.json names."""
    from src.run import checkpoint

    run_dir = str(tmp_path / "run")
    assert train_in_process([*SMALL, "--max_steps", "1", "--output_path", run_dir]) == 1
    assert train_in_process(["--resume", "--output_path", run_dir, "--max_steps", "2"]) == 2
    assert checkpoint.saved_steps(run_dir) == [1, 2]
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]
    with open(os.path.join(run_dir, "train.log")) as f:
        assert "resumed from " + checkpoint.ckpt_path(run_dir, "train_state", 1) in f.read()


def test_a_damaged_newest_state_gives_way_to_the_previous_one(run_copy):
    from src.run import checkpoint

    newest = checkpoint.ckpt_path(run_copy, "train_state", 2)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    warnings = []
    assert checkpoint.latest_training_state(run_copy, warnings.append) == \
        checkpoint.ckpt_path(run_copy, "train_state", 1)
    assert len(warnings) == 1 and newest in warnings[0]
    with pytest.raises(UserError, match="cannot read checkpoint"):
        checkpoint.read_checkpoint(newest)


def test_rotation_keeps_the_newest_sets_and_the_protected_one(run_copy):
    from src.run import checkpoint

    checkpoint.remove_old_checkpoints(run_copy, keep=1, protected=(1,))
    assert checkpoint.saved_steps(run_copy, "discriminator") == [1, 2]
    checkpoint.remove_old_checkpoints(run_copy, keep=1)
    assert {kind: checkpoint.saved_steps(run_copy, kind) for kind in checkpoint.KINDS} == \
        {kind: [2] for kind in checkpoint.KINDS}


# ---- src/run/trained.py: a checkpoint file or a run directory, as --ckpt_file names them ----

def test_a_run_directory_means_its_newest_networks_with_their_recorded_architecture(run):
    from src.run import trained

    netG, arch, g_file = trained.load(run, "G")
    assert g_file.endswith(os.path.join("ckpt", "generator_00000002.ckpt")) and arch == G_ARCH
    assert trained.run_dir_of(g_file) == os.path.abspath(run)
    _, d_arch, d_file = trained.load(run, "D")
    assert d_file.endswith("discriminator_00000002.ckpt") and d_arch == {"net": "D", "image_size": 32, "ndf": 8,
                                                                         "nc": 1}
    assert trained.resolve(run, "G", "latest") == g_file
    with pytest.raises(UserError, match="no sample-quality measurement"):
        trained.resolve(run, "G", "best")
    with pytest.raises(UserError, match="holds a generator with ngf=8, but --ngf 16 was given"):
        trained.architecture(g_file, "G", {"ngf": 16})
    with pytest.raises(UserError, match="is a discriminator checkpoint"):
        trained.architecture(d_file, "G")


# ---- src/outputs: images and exports ----

def test_generate_writes_the_grid_the_formats_and_the_walks_whatever_the_batch_size(run, tmp_path):
    from src.outputs.generate import generate
    from src.run import trained

    forward = forward_of(trained.load(run, "G")[0])
    written = generate(forward, 16, str(tmp_path / "a"), num_images=10, seed=3, fmt="npz", batch_size=4,
                       interpolate=2, steps=5)
    assert sorted(os.path.basename(p) for p in written) == ["generate.png", "images.npz", "interpolate.png"]
    generate(forward, 16, str(tmp_path / "b"), num_images=10, seed=3, fmt="png", batch_size=7)
    with np.load(tmp_path / "a" / "images.npz") as saved:
        images = saved["images"]
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 1)
    assert sorted(os.listdir(tmp_path / "b" / "images")) == [f"{i:06d}.png" for i in range(10)]
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "images" / "000009.png")), images[9, :, :, 0])
    with pytest.raises(UserError, match="--num_images must be at least 1"):
        generate(forward, 16, str(tmp_path / "c"), num_images=0)


def test_a_mindir_export_records_the_architecture_and_computes_what_g_computes(run, tmp_path):
    import mindspore as ms
    import mindspore.nn as nn

    from src.outputs import export_model
    from src.run import trained

    netG, arch, g_file = trained.load(run, "G")
    z = np.random.default_rng(0).standard_normal((2, 16, 1, 1)).astype(np.float32)
    info = {key: str(value) for key, value in arch.items()}
    path = export_model.export(netG, z, str(tmp_path / "g"), "MINDIR", info)
    assert path == str(tmp_path / "g.mindir") and export_model.output_file(path, "MINDIR") == path
    assert export_model.mindir_input_shape(path) == [2, 16, 1, 1] and export_model.mindir_info(path) == info
    graph = nn.GraphCell(ms.load(path))
    np.testing.assert_allclose(graph(ms.Tensor(z)).asnumpy(), netG(ms.Tensor(z)).asnumpy(), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="AIR export needs an Ascend device"):
        export_model.check_target("AIR", "CPU")
    with pytest.raises(UserError, match="is not a MINDIR file"):
        export_model.mindir_info(g_file)


# ---- src/analysis/commands.py: what eval.py --numbered/--arithmetic/--nearest and verify.py --visualize run ----

def test_the_analysis_commands_write_their_files(run, tmp_path):
    from src.analysis import commands
    from src.run import trained

    netG, arch, g_file = trained.load(run, "G")
    out = str(tmp_path / "out")  # eval.py has made it (generate.png) when it runs the analyses
    os.makedirs(out)
    commands.numbered(netG, arch, out, 12, 0, 8, g_file)
    assert commands.arithmetic(netG, arch, out, "0,1 - 2 + 3", 0) == [os.path.join(out, "arithmetic.png")]
    data = fixtures.write_images(tmp_path / "data", 12, lambda i: fixtures.solid((20 * i,) * 3))
    lines = []
    commands.nearest(netG, arch, g_file, 2, "folder", str(data), out, num_images=4, batch_size=8, log=lines.append)
    with open(os.path.join(out, "nearest.json")) as f:
        report = json.load(f)
    assert report["num_train"] == 12 and report["k"] == 2 and set(report["distances"]) == {"pixel", "feature"}
    assert report["reference"].startswith("4 training images") and lines[-1].startswith("nearest pixel L2")
    with pytest.raises(UserError, match="--nearest needs --dataset"):
        commands.nearest(netG, arch, g_file, 2, None, None, out)

    netD, d_arch, _ = trained.load(run, "D")
    images = np.random.default_rng(1).uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)
    path = commands.guided(netD, d_arch, images, out, commands.parse_channels("0,3"), top=2)
    assert os.path.isfile(path)
    assert sorted(os.listdir(out)) == ["arithmetic.png", "guided_backprop.png", "nearest.json", "nearest.png",
                                       "numbered.png", "numbered_z.npz"]
    with pytest.raises(UserError, match="--channels 'a'"):
        commands.parse_channels("a")
