"""src/evaluation and calc_metrics.py: sample-quality metrics one can trust.

Each metric is checked for what makes a number trustworthy: real images of the test split scored against it
(train vs test) come out far below noise; a growing, known distortion of real images (added noise, blur, classes
removed) moves it up step by step; the same seed gives the same number. The data are the built-in digits and tiny
MNIST / class-folder / flat-folder fixtures; classifiers train for seconds.
"""
import json
import os
import shutil

import numpy as np
import pytest
from scipy import ndimage

from src.errors import UserError
from tests import fixtures
from tests.cli import run_tool, train

LOG = []


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("quality_cache"))


@pytest.fixture(scope="module")
def digits():
    from src.data.labelled import load_splits
    splits, _ = load_splits("digits", None, 32, 1)
    return splits


@pytest.fixture(scope="module")
def judge(cache):
    """The trainer's judge for digits: swd, cfid, ckid; its classifier trained here, cached in `cache`."""
    from src.evaluation import QualityJudge
    return QualityJudge("digits", None, 32, 1, num_images=500, seed=0, cache_dir=cache, log=LOG.append)


def noisy(images, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(images + sigma * rng.standard_normal(images.shape), -1, 1).astype(np.float32)


def uniform_noise(count, nc=1, size=32, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (count, nc, size, size)).astype(np.float32)


def assert_increasing(values, what):
    assert all(a < b for a, b in zip(values, values[1:])), f"{what} not increasing: {values}"


# -- SWD alone (numpy) -----------------------------------------------------------------------------------------

def test_laplacian_pyramid_levels_and_exact_reconstruction():
    from src.evaluation import swd
    assert [swd.num_levels(s) for s in (16, 32, 64)] == [1, 2, 3]
    images = uniform_noise(3, nc=3, size=32)
    pyramid = swd.laplacian_pyramid(images, 2)
    assert [level.shape[-1] for level in pyramid] == [32, 16]
    np.testing.assert_allclose(pyramid[0] + swd.upsample(pyramid[1]), images, atol=1e-5)


def test_quantile_tables_equal_the_papers_sorted_difference_for_equal_sizes():
    """With as many quantiles as descriptors, the table comparison is the paper's: mean |sort(A d) - sort(B d)|."""
    from src.evaluation import swd
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 49)).astype(np.float32), rng.laplace(size=(300, 49)).astype(np.float32)
    directions = rng.standard_normal((49, 16)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=0)
    exact = np.mean(np.abs(np.sort(a @ directions, axis=0) - np.sort(b @ directions, axis=0)))
    table_a = swd.sorted_projections(a, directions, quantiles=300)
    table_b = swd.sorted_projections(b, directions, quantiles=300)
    assert np.mean(np.abs(table_a - table_b)) == pytest.approx(exact, rel=1e-5)


def test_swd_is_seeded_and_works_on_one_and_three_channels(digits):
    from src.evaluation.swd import SlicedWasserstein
    test, train_x = digits["test"][0][:200], digits["train"][0][:200]
    first = SlicedWasserstein(test, seed=3)(train_x)
    assert SlicedWasserstein(test, seed=3)(train_x) == first
    assert SlicedWasserstein(test, seed=4)(train_x)["swd"] != first["swd"]
    rgb = SlicedWasserstein(np.repeat(test, 3, axis=1), seed=3)
    real = rgb(np.repeat(train_x, 3, axis=1))
    assert len(real["swd_levels"]) == 2 and real["swd"] < 0.2 * rgb(uniform_noise(200, nc=3))["swd"]


# -- the digits judge: swd, cfid, ckid -----------------------------------------------------------------------------

def test_classifier_is_trained_once_with_its_accuracy_logged(judge):
    assert judge.metrics == ("swd", "cfid", "ckid") and judge.primary == "cfid"
    assert judge.reference == "450 real digits test images"
    trained = [line for line in LOG if "test accuracy" in line]
    assert trained, LOG
    accuracy = float(trained[0].split("test accuracy ")[1].split()[0])
    assert accuracy > 0.97


def test_real_versus_real_is_far_below_noise_versus_real(judge, digits):
    real = judge.score(digits["train"][0])
    noise = judge.score(uniform_noise(500))
    for metric in judge.metrics:
        assert real[metric] < 0.1 * noise[metric], (metric, real, noise)
    assert real["swd"] < 15 and real["cfid"] < 2 and abs(real["ckid"]) < 0.05


def test_added_noise_of_growing_strength_raises_every_metric(judge, digits):
    images = digits["train"][0][:500]
    scores = [judge.score(noisy(images, sigma)) for sigma in (0.0, 0.1, 0.25, 0.5)]
    for metric in judge.metrics:
        assert_increasing([s[metric] for s in scores], metric)


def test_blur_of_growing_width_raises_swd(judge, digits):
    images = digits["train"][0][:300]
    scores = [judge.score(ndimage.gaussian_filter(images, (0, 0, s, s)))["swd"] for s in (0.0, 0.7, 1.4, 2.8)]
    assert_increasing(scores, "swd under blur")


def test_removing_classes_raises_the_classifier_distances(judge, digits):
    """Real train images of the first k digit classes only (k = 10, 7, 4, 1), 300 images each time: a generator
    that drops modes. The classifier features see it; cfid and ckid grow as classes go."""
    images, labels = digits["train"]
    rng = np.random.default_rng(0)
    scores = []
    for kept in (10, 7, 4, 1):
        pool = np.flatnonzero(labels < kept)
        scores.append(judge.score(images[rng.choice(pool, 300, replace=len(pool) < 300)]))
    for metric in ("cfid", "ckid"):
        assert_increasing([s[metric] for s in scores], f"{metric} with classes removed")


def test_evaluate_draws_a_fixed_latent_sample_and_repeats_exactly(judge, digits, cache):
    """The same generator scored twice, and by a second judge loading the cached classifier: the same numbers."""
    from src.evaluation import QualityJudge
    images = digits["train"][0]
    calls = []

    def generate(z):
        calls.append(z.shape)
        index = (np.abs(z[:, :3, 0, 0]).sum(axis=1) * 1e4).astype(np.int64) % len(images)
        return images[index]

    first = judge.evaluate(generate, nz=16)
    assert set(first) == {"swd", "swd_levels", "cfid", "ckid", "num_images", "reference"}
    assert first["num_images"] == 500 and sum(shape[0] for shape in calls) == 500
    assert all(shape[1:] == (16, 1, 1) for shape in calls)
    assert judge.evaluate(generate, nz=16) == first
    log = []
    again = QualityJudge("digits", None, 32, 1, num_images=500, seed=0, cache_dir=cache, log=log.append)
    assert not any("trained" in line for line in log), log  # loaded from the cache, not retrained
    assert again.evaluate(generate, nz=16) == first
    other_seed = QualityJudge("digits", None, 32, 1, metrics=("swd",), num_images=500, seed=1, cache_dir=cache,
                              log=None).evaluate(generate, nz=16)
    assert other_seed["swd"] != first["swd"]


def test_kid_matches_its_definition_and_is_near_zero_for_one_distribution():
    from src.evaluation.kernel import kernel_distance
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5)) + 0.5
    k = lambda a, b: (a @ b.T / 5 + 1) ** 3  # noqa: E731
    m = 40
    expected = ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1)) + (k(y, y).sum() - np.trace(k(y, y)))
                / (m * (m - 1)) - 2 * k(x, y).mean())
    assert kernel_distance(x, y, subsets=3) == pytest.approx(expected, rel=1e-9)  # subsets of all 40: one value
    same = kernel_distance(rng.standard_normal((500, 5)), rng.standard_normal((500, 5)), max_subset=200)
    assert abs(same) < 0.1 * expected


# -- other datasets ------------------------------------------------------------------------------------------------

def _class_image(label, index, size=28):
    """A dark image with a bright bar whose place depends on the class, plus seeded noise."""
    rng = np.random.default_rng([label, index])
    image = rng.integers(0, 40, (size, size)).astype(np.uint8)
    row = 2 + (label * 5) % (size - 6)
    image[row:row + 4, 4 + label:size - 4] = 220 + rng.integers(0, 30)
    return image


def test_mnist_files_get_the_classifier_metrics_and_its_official_test_split(tmp_path):
    from src.evaluation import QualityJudge
    path = fixtures.write_mnist(tmp_path / "mnist", n_train=80, n_test=40,
                                image=lambda i: _class_image(i % 10, i))
    log = []
    judge = QualityJudge("mnist", path, 32, 1, num_images=40, cache_dir=str(tmp_path / "run"), log=log.append)
    assert judge.metrics == ("swd", "cfid", "ckid") and judge.primary == "cfid"
    assert judge.reference == "40 real mnist test images"
    assert any(name.endswith(".ckpt") for name in os.listdir(tmp_path / "run"))
    real = judge.score(np.concatenate([judge_input for judge_input in _mnist_train(path)]))
    noise = judge.score(uniform_noise(40))
    assert real["cfid"] < noise["cfid"] and real["swd"] < noise["swd"]


def _mnist_train(path):
    from src.data.labelled import load_splits
    splits, _ = load_splits("mnist", path, 32, 1)
    return [splits["train"][0]]


def test_the_classifier_is_trained_once_per_dataset_and_each_run_keeps_a_copy(tmp_path, monkeypatch):
    """A second run directory finds the classifier the first run trained (in the user's cache, for digits) and
    keeps its own copy, so a moved run still has it."""
    from src.evaluation import QualityJudge
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    first, second = [], []
    QualityJudge("digits", None, 32, 1, metrics=("cfid",), num_images=20, cache_dir=str(tmp_path / "a"),
                 log=first.append)
    QualityJudge("digits", None, 32, 1, metrics=("cfid",), num_images=20, cache_dir=str(tmp_path / "b"),
                 log=second.append)
    trained = lambda log: any(" epochs on " in line for line in log)  # clf.train's line
    assert trained(first) and not trained(second), second
    shared = os.listdir(tmp_path / "home" / ".cache" / "dcgan")
    for place in (tmp_path / "a", tmp_path / "b"):
        assert sorted(os.listdir(place)) == sorted(shared) and len(shared) == 2


def test_class_folders_cache_the_classifier_beside_the_data(tmp_path):
    from src.evaluation import QualityJudge
    root = tmp_path / "data" / "shapes"
    for label, name in enumerate(("bars", "blocks", "lines")):
        fixtures.write_images(root / name, 12, lambda i, label=label: np.stack([_class_image(label, i, 32)] * 3, -1))
    judge = QualityJudge("folder", str(root), 32, 3, num_images=20, log=None)
    assert judge.primary == "cfid" and judge.nc == 3
    beside = [n for n in os.listdir(tmp_path / "data") if n.startswith("shapes.quality_classifier_folder_32px_nc3")]
    assert sorted(os.path.splitext(n)[1] for n in beside) == [".ckpt", ".json"]
    assert set(os.listdir(root)) == {"bars", "blocks", "lines"}  # nothing written inside the data


def test_unlabelled_data_get_swd_only_and_classifier_metrics_are_refused(tmp_path):
    from src.evaluation import QualityJudge
    path = fixtures.write_images(tmp_path / "flat", 30, lambda i: np.stack([_class_image(i % 3, i, 32)] * 3, -1))
    judge = QualityJudge("folder", path, 32, 3, num_images=30, log=None)
    assert judge.metrics == ("swd",) and judge.primary == "swd"
    assert judge.reference.startswith("30 real folder")
    real = judge.score(np.asarray(judge_images(path)))
    assert real["swd"] < 0.2 * judge.score(uniform_noise(30, nc=3))["swd"]
    with pytest.raises(UserError, match="cfid need a labelled dataset"):
        QualityJudge("folder", path, 32, 3, metrics=("swd", "cfid"), log=None)
    fake = QualityJudge("fake", None, 32, None, num_images=8, log=None)
    assert fake.metrics == ("swd",) and fake.nc == 3


def judge_images(path):
    from src.dataset import create_dataset
    ds, info = create_dataset("folder", path, 32, batch_size=30, shuffle=False)
    return next(ds.create_tuple_iterator(output_numpy=True))[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset="nonsense"), "unknown dataset"),
    (dict(metrics=("swd", "fjd")), "unknown metric fjd"),
    (dict(metrics=("fid",)), "need a feature network"),
    (dict(num_images=1), "at least 2"),
    (dict(feature_model="/no/such/model.onnx"), "feature model not found"),
])
def test_bad_input_is_one_clear_user_error(kwargs, message):
    from src.evaluation import QualityJudge
    arguments = dict(dataset="digits", data_path=None, image_size=32, nc=1, log=None)
    arguments.update(kwargs)
    with pytest.raises(UserError, match=message):
        QualityJudge(**arguments)


# -- a user's feature network: fid, kid ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def feature_models(tmp_path_factory):
    """One small random network (Conv2d, pooling, Dense) taking 3x24x24 images, exported to MINDIR and ONNX."""
    import mindspore as ms
    import mindspore.nn as nn

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, pad_mode="same", weight_init="he_normal")
            self.pool = nn.MaxPool2d(kernel_size=4, stride=4)
            self.flatten = nn.Flatten()
            self.dense = nn.Dense(8 * 6 * 6, 16, weight_init="he_normal")
            self.relu = nn.ReLU()

        def construct(self, x):
            return self.dense(self.flatten(self.pool(self.relu(self.conv(x)))))

    ms.set_seed(0)
    net = Net()
    net.set_train(False)
    folder = tmp_path_factory.mktemp("feature_models")
    example = ms.Tensor(np.zeros((8, 3, 24, 24), np.float32))
    ms.export(net, example, file_name=str(folder / "features"), file_format="MINDIR")
    ms.export(net, example, file_name=str(folder / "features"), file_format="ONNX")
    return str(folder / "features.mindir"), str(folder / "features.onnx")


def test_a_mindir_or_onnx_feature_network_gives_fid_and_kid(feature_models, digits):
    """Digits are 1x32x32, the network takes 3x24x24: resized and replicated. MINDIR and ONNX of one network agree;
    real vs real is far below noise; stronger noise, larger distances."""
    from src.evaluation import QualityJudge
    mindir, onnx_file = feature_models
    results = {}
    for path in feature_models:
        judge = QualityJudge("digits", None, 32, 1, metrics=("fid", "kid"), feature_model=path, log=None)
        assert judge.primary == "fid"
        images = digits["train"][0][:450]
        results[path] = [judge.score(x) for x in (images, noisy(images, 0.15), noisy(images, 0.4),
                                                  uniform_noise(450))]
    for a, b in zip(results[mindir], results[onnx_file]):
        assert a["fid"] == pytest.approx(b["fid"], rel=1e-3) and a["kid"] == pytest.approx(b["kid"], rel=1e-2, abs=1e-4)
    for metric in ("fid", "kid"):
        values = [r[metric] for r in results[onnx_file]]
        assert values[0] < 0.1 * values[-1]
        assert_increasing(values, metric)


def test_a_feature_model_that_is_not_one_is_refused(tmp_path):
    from src.evaluation import QualityJudge
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load feature model"):
        QualityJudge("digits", None, 32, 1, feature_model=str(bad), log=None)


# -- calc_metrics.py, end to end -----------------------------------------------------------------------------------

def calc_metrics(*args):
    return run_tool("calc_metrics.py", *args)


def test_calc_metrics_prints_one_json_line_and_appends_it_to_the_run(tmp_path, judge, cache):
    run = str(tmp_path / "run")
    train("--dataset", "digits", "--output_path", run, "--max_steps", "4", "--ngf", "8", "--ndf", "8", "--nz", "16",
          "--batch_size", "16", "--log_interval", "1", "--save_checkpoint_steps", "4", "--metrics_interval", "0")
    for name in os.listdir(cache):  # the classifier the judge fixture trained: the same data, so it is reused
        shutil.copy(os.path.join(cache, name), run)
    result = calc_metrics("--ckpt_file", run, "--dataset", "digits", "--num_images", "300")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {"swd", "swd_levels", "cfid", "ckid", "primary", "generator", "reference", "num_images", "step",
            "source"} <= set(record)
    assert record["primary"] == "cfid" and record["num_images"] == 300 and record["step"] == 4
    assert record["reference"] == "450 real digits test images" and record["source"] == "calc_metrics"
    assert record["generator"].endswith(os.path.join("ckpt", "generator_00000004.ckpt"))
    assert "trained" not in result.stderr and "test accuracy" in result.stderr  # the copied classifier was used
    with open(os.path.join(run, "quality.jsonl")) as f:
        assert [json.loads(line) for line in f] == [record]

    refused = calc_metrics("--ckpt_file", run, "--dataset", "digits", "--metrics", "swd,nope")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == ["error: unknown metric nope; choose from: swd, cfid, ckid, fid, kid"]
    refused = calc_metrics("--ckpt_file", run, "--dataset", "fake", "--metrics", "cfid")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith("error: cfid need a labelled")
    with open(os.path.join(run, "quality.jsonl")) as f:
        assert len(f.readlines()) == 1
