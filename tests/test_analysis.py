"""The paper's analyses (src/analysis/): latent arithmetic, the memorisation check, guided backpropagation.

The library tests use stand-ins a reader can check by hand (a linear generator, crafted training sets, a one-layer
net); the CLI tests run each command once on the shared 2-step digits run (tests/trained_run.py) and once on a 1-step
64 px RGB run of an image folder.
"""
import re

import numpy as np
import pytest

from src.analysis import arithmetic, nearest
from src.errors import UserError

NZ = 6
SHAPE = (1, 4, 4)


def linear_generator(seed=0):
    """z (B, NZ, 1, 1) -> W z as (B, 1, 4, 4) images: a generator stand-in where arithmetic commutes with G."""
    weight = np.random.default_rng(seed).standard_normal((int(np.prod(SHAPE)), NZ)).astype(np.float32) * 0.1
    return lambda z: (np.asarray(z).reshape(len(z), NZ) @ weight.T).reshape((len(z),) + SHAPE)


# ---- latent arithmetic ----

def test_result_vector_is_mean_a_minus_mean_b_plus_mean_c():
    z = np.random.default_rng(1).standard_normal((12, NZ, 1, 1)).astype(np.float32)
    terms = arithmetic.parse_expression("0,1,2 - 3,4,5 + 6,7,8", len(z))
    expected = z[[0, 1, 2]].mean(0) - z[[3, 4, 5]].mean(0) + z[[6, 7, 8]].mean(0)
    np.testing.assert_allclose(arithmetic.combine(z, terms), expected, rtol=1e-6, atol=1e-6)

    forward = linear_generator()
    parts = arithmetic.arithmetic(forward, z, terms, seed=3)
    np.testing.assert_allclose(parts["result_z"], expected, rtol=1e-6, atol=1e-6)
    # The first result image is G(result vector); the others carry uniform noise of at most NOISE per component.
    np.testing.assert_allclose(parts["results"][0], forward(expected[None])[0], rtol=1e-5, atol=1e-6)
    latents = arithmetic.result_latents(expected, seed=3)
    assert latents.shape == (arithmetic.RESULT_SAMPLES, NZ, 1, 1)
    assert np.all(np.abs(latents[1:] - expected) <= arithmetic.NOISE + 1e-6) and np.any(latents[1:] != expected)
    # A linear G commutes with the arithmetic: the pixel-space result is the latent one (no clipping at this scale).
    np.testing.assert_allclose(parts["pixel_result"], parts["results"][0], rtol=1e-4, atol=1e-5)
    assert [len(e) for e in parts["exemplars"]] == [3, 3, 3]
    np.testing.assert_allclose(parts["mean_z_images"][1], forward(z[[3, 4, 5]].mean(0, keepdims=True))[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text, terms", [
    ("3,17,40 - 5,8,22 + 9", [(1, [3, 17, 40]), (-1, [5, 8, 22]), (1, [9])]),
    ("1\u22122", [(1, [1]), (-1, [2])]),  # the paper's minus sign
    ("-4 + 5", [(-1, [4]), (1, [5])]),
    (" 7 ", [(1, [7])]),
])
def test_expressions(text, terms):
    assert arithmetic.parse_expression(text, 64) == terms
    assert arithmetic.parse_expression(arithmetic.format_expression(terms), 64) == terms


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("   ", "empty"), ("3 +", "ends with an operator"), ("-", "ends with an operator"),
    ("3 + - 4", "two operators in a row"), ("a - b", "'a' is not a sample index"), ("3,,4", "empty index"),
    ("3 * 4", "'3 * 4' is not a sample index"), ("1.5", "'1.5' is not"), ("64", "sample 64 does not exist"),
])
def test_bad_expressions_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=re.escape(message)) as error:
        arithmetic.parse_expression(text, 64)
    assert "\n" not in str(error.value)


def test_numbered_samples_keep_their_z(tmp_path):
    from src.outputs.generate import latent

    forward = linear_generator()
    written = arithmetic.write_numbered(forward, NZ, str(tmp_path), num=10, seed=5)
    assert [p.rsplit("/", 1)[1] for p in written] == [arithmetic.NUMBERED_GRID, arithmetic.NUMBERED_Z]
    z = arithmetic.load_numbered(str(tmp_path), NZ)
    np.testing.assert_array_equal(z, latent(5, 10, NZ))  # the same z as generate.png's first 10 images
    path, parts = arithmetic.write_arithmetic(forward, str(tmp_path), "0,1 - 2 + 9", NZ)
    assert path.endswith(arithmetic.ARITHMETIC_FIGURE)
    np.testing.assert_allclose(parts["result_z"], z[[0, 1]].mean(0) - z[2] + z[9], rtol=1e-6, atol=1e-6)
    with pytest.raises(UserError, match="sample 10 does not exist"):
        arithmetic.write_arithmetic(forward, str(tmp_path), "10 - 1", NZ)
    with pytest.raises(UserError, match="takes nz 7"):
        arithmetic.load_numbered(str(tmp_path), 7)
    with pytest.raises(UserError, match="run eval.py --numbered"):
        arithmetic.load_numbered(str(tmp_path / "elsewhere"), NZ)


# ---- memorisation check ----

def _batches(images, size):
    return (images[i:i + size] for i in range(0, len(images), size))


def test_an_exact_training_image_is_at_distance_zero_and_a_copy(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (300,) + SHAPE).astype(np.float32)
    test = rng.uniform(-1, 1, (20,) + SHAPE).astype(np.float32)
    generated = rng.uniform(-1, 1, (8,) + SHAPE).astype(np.float32)
    generated[2] = train[123]  # a memorised training image
    generated[5] = train[7] + 0.5 / 127.5  # within half a grey level: still a copy
    features = lambda x: np.asarray(x).reshape(len(x), -1)[:, :5] * 3.0  # noqa: E731 (a D-feature stand-in)
    progress = []
    found = nearest.search(generated, test, _batches(train, 64), 3, featurize=features, total=len(train),
                           progress=lambda seen, total: progress.append(seen))
    assert progress == [64, 128, 192, 256, 300]  # one line per batch; the set streamed once

    # Batched search = brute force, for both distances, and the kept neighbour images are the right ones.
    for kind, vec in (("pixel", lambda x: x.reshape(len(x), -1)), ("feature", features)):
        d = np.sqrt(((vec(generated)[:, None] - vec(train)[None]) ** 2).sum(-1))
        order = np.argsort(d, axis=1)[:, :3]
        np.testing.assert_array_equal(found[kind]["generated"][1], order)
        np.testing.assert_allclose(found[kind]["generated"][0], np.take_along_axis(d, order, 1), rtol=1e-5)
        np.testing.assert_array_equal(found["neighbours"][kind], train[order])
    assert found["pixel"]["generated"][0][2, 0] == 0.0 and found["pixel"]["generated"][1][2, 0] == 123
    assert found["feature"]["generated"][0][2, 0] == 0.0
    assert found["pixel"]["test"][0].shape == (20, 3)

    paths, report = nearest.write(generated, found, str(tmp_path), {"checkpoint": "x"})
    assert report["copies"] == [2, 5]
    assert report["distances"]["pixel"]["nearest"][2] == {"sample": 2, "train_index": 123, "distance": 0.0}
    assert report["distances"]["pixel"]["generated_to_train"]["p0"] == 0.0
    assert report["distances"]["pixel"]["test_to_train"]["p50"] > 0
    assert report["num_train"] == 300 and report["k"] == 3 and report["checkpoint"] == "x"
    assert all(p.startswith(str(tmp_path)) for p in paths)


def test_training_images_as_the_reference_are_searched_among_the_others():
    rng = np.random.default_rng(1)
    train = rng.uniform(-1, 1, (50,) + SHAPE).astype(np.float32)
    train[31] = train[4]  # a duplicate in the training set: its nearest other image is at distance 0
    reference = [4, 10, 45]
    found = nearest.search(train[:2], train[reference], _batches(train, 16), 2, test_indices=reference)
    distances, indices = found["pixel"]["test"]
    assert indices[0, 0] == 31 and distances[0, 0] == 0.0
    assert 10 not in indices[1] and 45 not in indices[2] and np.all(distances[1:] > 0)
    assert found["pixel"]["generated"][0][0, 0] == 0.0  # generated queries are not excluded from anything


def test_nearest_refuses_images_of_another_size():
    generated = np.zeros((2,) + SHAPE, np.float32)
    with pytest.raises(UserError, match="image size"):
        nearest.search(generated, generated, [np.zeros((4, 1, 8, 8), np.float32)], 1)
    with pytest.raises(UserError, match="at least 1"):
        nearest.search(generated, generated, [], 0)


# ---- guided backpropagation ----

def _one_layer(alpha):
    """image -> (Leaky)ReLU(1x1 conv with weight 1): each output unit sees one pixel, checkable by hand."""
    import mindspore as ms
    import mindspore.nn as nn

    conv = nn.Conv2d(1, 1, 1, has_bias=False, weight_init="ones")
    act = nn.LeakyReLU(alpha) if alpha else nn.ReLU()
    return [nn.SequentialCell([conv, act])], ms


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_guided_maps_are_zero_where_the_relu_masks_block(alpha):
    import mindspore.nn as nn
    import mindspore.ops as ops
    from src.analysis import guided_backprop as gb

    stages, ms = _one_layer(alpha)
    net = gb.GuidedStages(stages)
    image = np.array([[[[1.0, -1.0, 2.0], [-0.5, 0.5, 3.0], [0.0, 4.0, -2.0]]]], np.float32)
    weight = np.array([[[[1.0, 1.0, -1.0], [1.0, 2.0, 1.0], [1.0, -1.0, 1.0]]]], np.float32)
    maps = gb.guided_maps(net, image, weight)
    assert maps.shape == image.shape
    # Forward mask (input > 0) and backward mask (gradient > 0): only pixels with both pass, with their weight.
    expected = weight * (image > 0) * (weight > 0)
    np.testing.assert_array_equal(maps, expected)
    # Plain backpropagation through the same layers lets the negative gradients (and, for LeakyReLU, the
    # negative inputs) through: the guided map is not the gradient.
    plain = ops.GradOperation()(gb._Objective(nn.SequentialCell(stages)))
    plain = plain(ms.Tensor(image), ms.Tensor(weight)).asnumpy()
    assert plain[0, 0, 0, 2] == -1.0 and maps[0, 0, 0, 2] == 0.0
    assert plain[0, 0, 0, 1] == pytest.approx(alpha) and maps[0, 0, 0, 1] == 0.0


def test_guided_maps_of_d_have_the_images_shape_and_pick_the_top_images():
    import mindspore as ms
    from src.analysis import guided_backprop as gb
    from src.discriminator import Discriminator

    netD = Discriminator(32, ndf=2, nc=1)
    netD.set_train(False)
    images = np.random.default_rng(0).uniform(-1, 1, (10, 1, 32, 32)).astype(np.float32)
    result = gb.visualize(list(netD.blocks), images, channels=[0, 3], top=2, batch_size=4)
    assert result["maps"].shape == result["images"].shape == (2, 2, 1, 32, 32)
    last = netD.features(ms.Tensor(images))[-1].asnumpy()  # (10, 16, 4, 4)
    for row, channel in enumerate([0, 3]):
        strongest = last[:, channel].reshape(10, -1).max(axis=1)
        np.testing.assert_array_equal(result["indices"][row], np.argsort(-strongest, kind="stable")[:2])
        np.testing.assert_array_equal(result["images"][row], images[result["indices"][row]])
    # A last-stage unit (4x4 map) sees part of the 32 px image: pixels outside its receptive field get nothing.
    assert np.all(np.isfinite(result["maps"])) and np.any(result["maps"] != 0)
    assert np.all((result["maps"] == 0).reshape(4, -1).mean(axis=1) > 0.2)
    with pytest.raises(UserError, match="channel 99 does not exist"):
        gb.visualize(list(netD.blocks), images, channels=[99], top=2)


def test_maps_are_shown_scaled_to_their_99th_percentile():
    from src.analysis import guided_backprop as gb

    flat = np.concatenate([np.zeros(50), np.linspace(0.5, 1.0, 949), [100.0]]).astype(np.float32)
    maps = np.stack([flat.reshape(1, 25, 40), -flat.reshape(1, 25, 40)])
    shown = gb.normalise(maps)
    assert shown.shape == maps.shape and np.abs(shown).max() == 1.0
    assert shown[0, 0, 0, 0] == 0.0  # zero stays mid-grey
    # One extreme gradient does not set the scale: the rest of the map keeps its contrast (with the largest value
    # as the scale, the 0.5 to 1.0 range would be shown as 0.005 to 0.01, all but grey), and is clipped to [-1, 1].
    assert shown[0].reshape(-1)[50] == pytest.approx(0.5, rel=0.01) and shown[0].reshape(-1)[-1] == 1.0
    np.testing.assert_array_equal(shown[1], -shown[0])
    sparse = np.zeros((1, 1, 20, 20), np.float32)
    sparse[0, 0, 3, 3], sparse[0, 0, 5, 5] = 0.25, 0.1  # under 1% non-zero: the largest value sets the scale
    np.testing.assert_allclose(gb.normalise(sparse)[0, 0, [3, 5], [3, 5]], [1.0, 0.4], rtol=1e-6)


# ---- the commands, end to end: the shared 2-step digits run, and a 1-step 64 px RGB run ----

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from tests.trained_run import small_digits_run
    return small_digits_run(tmp_path_factory)


ANALYSIS_FILES = ["arithmetic.png", "generate.png", "nearest.json", "nearest.png", "numbered.png", "numbered_z.npz"]


def test_eval_numbered_arithmetic_and_nearest(digits_run, tmp_path):
    import json

    from tests.cli import assert_user_error, check, run_tool

    out = tmp_path / "analyses"
    result = check(run_tool("eval.py", "--ckpt_file", digits_run, "--output_path", out, "--num_images", 16,
                            "--numbered", "--arithmetic", "0,1,2 - 3,4 + 5", "--nearest", 2, "--dataset", "digits"))
    for name in ("numbered.png", "numbered_z.npz", "arithmetic.png", "nearest.png", "nearest.json"):
        assert f"wrote {out / name}" in result.stdout, name
    assert sorted(p.name for p in out.iterdir()) == ANALYSIS_FILES  # and no temporary file left behind
    assert "nearest: 1,347 / 1,347 training images" in result.stdout
    report = json.loads((out / "nearest.json").read_text())
    assert report["num_generated"] == 16 and report["k"] == 2 and report["num_train"] == 1347
    assert set(report["distances"]) == {"pixel", "feature"}  # the run saved D with G: D-feature distances too
    assert report["distances"]["pixel"]["test_to_train"]["p50"] > 0 and report["copies"] == []
    assert "real test images" in report["reference"]
    # Bad input fails before a network is loaded or a file written: one line, exit code 2.
    for args, message in [(["--arithmetic", "1 - - 2"], "two operators in a row"),
                          (["--arithmetic", "16 - 2"], "sample 16 does not exist; numbered.png has samples 0 to 15"),
                          (["--nearest", 2], "--nearest needs --dataset")]:
        assert_user_error(run_tool("eval.py", "--ckpt_file", digits_run, "--output_path", out, *args), message)
    assert_user_error(run_tool("eval.py", "--ckpt_file", digits_run, "--output_path", tmp_path / "elsewhere",
                               "--arithmetic", "1 - 2"), "run eval.py --numbered with the same --output_path first")
    assert sorted(p.name for p in out.iterdir()) == ANALYSIS_FILES
    assert not (tmp_path / "elsewhere").exists()


def test_verify_visualize(digits_run, tmp_path):
    from PIL import Image

    from tests.cli import assert_user_error, check, run_tool

    result = check(run_tool("verify.py", "--ckpt_file", digits_run, "--visualize", "--channels", "0,5",
                            "--top", 2, "--output_path", tmp_path))
    assert f"wrote {tmp_path / 'guided_backprop.png'}" in result.stdout
    assert Image.open(tmp_path / "guided_backprop.png").size[0] > 500  # trained and untrained D side by side
    assert_user_error(run_tool("verify.py", "--ckpt_file", digits_run, "--visualize", "--channels", "a"),
                      "--channels 'a'")


def _shape_image(kind):
    """index -> a 64 x 64 RGB image: a disc (kind 0) or a square (kind 1) on black, moving with the index."""
    def make(index):
        rows, cols = np.mgrid[:64, :64]
        centre, radius = 18 + 4 * index, 6 + index % 4
        inside = ((rows - centre) ** 2 + (cols - centre) ** 2 < radius ** 2) if kind == 0 else \
            ((abs(rows - centre) < radius) & (abs(cols - 63 + centre) < radius))
        image = np.zeros((64, 64, 3), np.uint8)
        image[inside] = (255, 200, 0) if kind == 0 else (40, 160, 255)
        return image
    return make


@pytest.fixture(scope="module")
def run_64px(tmp_path_factory):
    """(run directory, data folder) of a 1-step 64 px RGB run (nz 8, ngf = ndf = 4) on 16 images in two class
    folders: a folder has no test split, so nearest.json's reference is training images against the others."""
    from tests.fixtures import write_images
    from tests.cli import check, run_tool

    root = tmp_path_factory.mktemp("run_64px")
    for kind, name in enumerate(("discs", "squares")):
        write_images(root / "data" / name, 8, _shape_image(kind))
    check(run_tool("train.py", "--dataset", "folder", "--data_path", root / "data", "--image_size", 64, "--nz", 8,
                   "--ngf", 4, "--ndf", 4, "--max_steps", 1, "--batch_size", 4, "--metrics_interval", 0,
                   "--output_path", root / "run"))
    return root / "run", root / "data"


def test_the_analyses_on_a_64px_rgb_run(run_64px, tmp_path):
    import json

    from PIL import Image

    from tests.cli import check, run_tool

    run, data = run_64px
    result = check(run_tool("eval.py", "--ckpt_file", run, "--output_path", tmp_path, "--num_images", 8,
                            "--numbered", "--arithmetic", "0,1 - 2 + 3,4", "--nearest", 3, "--dataset", "folder",
                            "--data_path", data))
    assert "(64 px, nz 8, ngf 4, nc 3)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ANALYSIS_FILES
    with np.load(tmp_path / "numbered_z.npz") as saved:
        assert saved["z"].shape == (8, 8, 1, 1)
    assert Image.open(tmp_path / "numbered.png").size[0] >= 3 * 64  # 3 columns of 64 px tiles, not shrunk
    report = json.loads((tmp_path / "nearest.json").read_text())
    assert report["num_train"] == 16 and set(report["distances"]) == {"pixel", "feature"}
    assert report["reference"].startswith("8 training images") and "no test split" in report["reference"]
    assert report["distances"]["pixel"]["test_to_train"]["p0"] > 0  # no image was matched with itself

    result = check(run_tool("verify.py", "--ckpt_file", run, "--visualize", "--dataset", "folder", "--data_path",
                            data, "--top", 2, "--output_path", tmp_path))
    assert "top 2 of 4 test images" in result.stdout
    assert Image.open(tmp_path / "guided_backprop.png").mode == "RGB"
