"""verify.py and its library: the representation-learning protocol (features, scaling, C, labels, baselines)."""
import json

import numpy as np
import pytest

from src.errors import UserError
from tests import fixtures as fx
from tests.cli import assert_user_error, check, run_tool
from tests.trained_run import small_digits_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return small_digits_run(tmp_path_factory)


def test_verify_on_digits_prints_accuracy_and_both_baselines(run_dir, tmp_path):
    result = check(run_tool("verify.py", "--ckpt_file", run_dir, "--dataset", "digits", "--num_labels", "60",
                            "--output_path", tmp_path))
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert len(lines) == 1  # one JSON line, nothing else on stdout
    for value in (report["accuracy"], report["baselines"]["untrained_d"], report["baselines"]["raw_pixels"]):
        assert 0.5 < value <= 1.0  # chance is 0.1: even a 2-step D and 6 labels per class do far better
    assert report["features"]["raw_pixels"]["C"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert report["num_train"] == 60 and report["num_classes"] == 10 and report["num_test"] == 450
    assert report["features"]["trained_d"]["dims"] == (16 + 32 + 64) * 16  # ndf 8: every stage, 4x4 each
    assert report["features"]["raw_pixels"]["dims"] == 32 * 32
    assert report["checkpoint"].endswith("discriminator_00000002.ckpt")  # the run directory's newest D
    assert report["frechet_distance"]["generator"].endswith("generator_00000002.ckpt")
    assert np.isfinite(report["frechet_distance"]["real_vs_generated"])
    assert json.loads((tmp_path / "verify.json").read_text()) == report


@pytest.mark.parametrize("args, message", [
    (["--ckpt_file", "{ckpt}/generator_00000002.ckpt"], "is a generator checkpoint"),
    (["--dataset", "mnist"], "dataset 'mnist' needs --data_path"),
    (["--dataset", "celeba", "--data_path", "."], "argument --dataset: invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(run_dir, args, message):
    args = [a.format(ckpt=run_dir / "ckpt") for a in args]
    if "--ckpt_file" not in args:
        args += ["--ckpt_file", str(run_dir)]
    assert_user_error(run_tool("verify.py", *args), message)


def test_scaler_is_fitted_on_the_training_examples_only():
    """Class = sign of feature 0. The test set is the same distribution shifted by +6 on feature 0: scaled with
    the training statistics every test point lands on the positive side (accuracy ~0.5). Had the scaler been refit
    on the test set (the model zoo's bug), the shift would vanish and the accuracy would be ~1."""
    from src.evaluation.representation import fit_and_score

    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, 5)) * 0.3
        x[:, 0] += np.where(y == 1, 2.0, -2.0)
        return x, y

    train_x, train_y = sample(400)
    test_x, test_y = sample(400)
    test_x[:, 0] += 6.0
    result, model = fit_and_score(train_x, train_y, test_x, test_y, "linear", seed=0)
    scaler = model.named_steps["standardscaler"]
    np.testing.assert_allclose(scaler.mean_, train_x.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, train_x.std(axis=0))
    assert result["accuracy"] < 0.6
    assert result["C"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0) and 0.9 < result["val_accuracy"] <= 1.0


def _blobs(rng, sizes, dims, classes=3):
    """Sets of `sizes` examples of the same Gaussian classes around random centres: (x float32, y) each."""
    centres = rng.standard_normal((classes, dims)) * 0.35
    labels = [np.arange(n) % classes for n in sizes]
    return [((centres[y] + rng.standard_normal((len(y), dims))).astype(np.float32), y) for y in labels]


@pytest.mark.parametrize("n, dims, duplicates", [
    (90, 300, False),  # fewer examples than dims: liblinear's dual solver, run on the triangular factor of the rows
    (90, 300, True),   # repeated examples (a singular Gram matrix): the same factor, weights mapped back exactly
    (150, 40, False),  # more examples than dims: the primal solver, run on rotated features
])
def test_linear_search_equals_the_plain_scikit_learn_protocol(n, dims, duplicates):
    """fit_and_score_all (features rewritten in at most N dims, fits in 2 worker processes, feature sets together)
    gives what the protocol says, written out directly with scikit-learn: every C fitted on the fit split with
    make_classifier, the best validation score's C refitted on all training examples, the test set scored."""
    from sklearn.model_selection import train_test_split

    from src.evaluation.representation import C_GRIDS, VALIDATION_FRACTION, fit_and_score_all, make_classifier

    rng = np.random.default_rng(n + dims + duplicates)
    (train_x, train_y), (test_x, test_y) = _blobs(rng, (n, 60), dims)
    if duplicates:
        train_x[1::2] = train_x[0::2]
        train_y[1::2] = train_y[0::2]
    raw = (train_x[:, :20] * 2, train_y, test_x[:, :20] * 2, test_y)  # a second feature set, searched alongside
    (result, model), (raw_result, _) = fit_and_score_all([(train_x, train_y, test_x, test_y), raw], jobs=2)

    fit_idx, val_idx = train_test_split(np.arange(n), test_size=VALIDATION_FRACTION, stratify=train_y,
                                        random_state=0)
    scores = [make_classifier("linear", C).fit(train_x[fit_idx], train_y[fit_idx])
              .score(train_x[val_idx], train_y[val_idx]) for C in C_GRIDS["linear"]]
    best = C_GRIDS["linear"][int(np.argmax(scores))]
    direct = make_classifier("linear", best).fit(train_x, train_y)
    assert result == {"C": best, "val_accuracy": round(max(scores), 4),
                      "accuracy": round(direct.score(test_x, test_y), 4)}
    assert result["accuracy"] > 0.8  # chance: 1/3
    svm, direct_svm = model.named_steps["linearsvc"], direct.named_steps["linearsvc"]
    scale = np.abs(direct_svm.coef_).max()
    np.testing.assert_allclose(svm.coef_, direct_svm.coef_, atol=1e-6 * scale)
    np.testing.assert_allclose(svm.intercept_, direct_svm.intercept_, atol=1e-6 * scale)
    np.testing.assert_array_equal(model.predict(test_x), direct.predict(test_x))
    assert raw_result == fit_and_score_all([raw], jobs=1)[0][0]  # serial, alone: the same


def test_rbf_svc_option_fits_and_scores():
    from src.evaluation.representation import fit_and_score

    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 2))
    y = (np.hypot(x[:, 0], x[:, 1]) > 1.2).astype(int)  # a circle: not linearly separable
    result, model = fit_and_score(x[:80], y[:80], x[80:], y[80:], "svc", seed=0)
    assert type(model.steps[-1][1]).__name__ == "SVC" and result["accuracy"] > 0.8
    with pytest.raises(UserError, match="unknown classifier"):
        fit_and_score(x, y, x, y, "knn")


def test_num_labels_takes_the_same_number_of_each_class():
    from src.evaluation.representation import balanced_subset

    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    chosen = balanced_subset(labels, 14, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [4, 4, 3, 3]  # 14 = 4 * 3 + 2: the first two take one more
    assert len(np.unique(chosen)) == 14
    np.testing.assert_array_equal(chosen, balanced_subset(labels, 14, seed=0))  # seeded
    with pytest.raises(UserError, match="needs 5 training examples of class 0"):
        balanced_subset(np.repeat(np.arange(2), [4, 40]), 10, seed=0)


def test_features_are_every_stage_max_pooled_to_4x4_and_concatenated():
    import mindspore as ms

    from src.discriminator import Discriminator
    from src.evaluation.representation import FeatureExtractor

    netD = Discriminator(32, 8, 3)
    netD.set_train(False)
    extractor = FeatureExtractor(netD, 32)
    x = ms.Tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    expected = []
    for stage in netD.features(x):  # (2, C, S, S) -> max over (S/4 x S/4) windows -> (2, C * 16)
        a = stage.asnumpy()
        size = a.shape[2] // 4
        expected.append(a.reshape(2, a.shape[1], 4, size, 4, size).max(axis=(3, 5)).reshape(2, -1))
    np.testing.assert_allclose(extractor(x).asnumpy(), np.concatenate(expected, axis=1), rtol=1e-6, atol=1e-6)
    # The model zoo's 32 px D and the 64 px D, by the sizes of their stages (no forward pass needed).
    assert sum(FeatureExtractor(Discriminator(32, 64, 3), 32).stage_dims) == (128 + 256 + 512) * 16 == 14336
    assert sum(FeatureExtractor(Discriminator(64, 64, 3), 64).stage_dims) == (64 + 128 + 256 + 512) * 16


def test_labelled_splits_from_real_format_fixtures(tmp_path):
    from src.data.labelled import load_splits

    mnist = fx.write_mnist(tmp_path / "mnist", n_train=20, n_test=10)
    splits, note = load_splits("mnist", mnist, image_size=32, nc=1)
    assert "official" in note
    assert splits["train"][0].shape == (20, 1, 32, 32) and splits["test"][0].shape == (10, 1, 32, 32)
    assert splits["train"][1].tolist() == [i % 10 for i in range(20)]  # the labels file, in order
    assert splits["train"][0].dtype == np.float32 and splits["train"][0].min() == -1.0

    folder = fx.write_image_folder(tmp_path / "folder", classes=("cat", "dog"), per_class=4,
                                   image=lambda i: fx.solid((255, 0, 0)))
    fx.write_images(tmp_path / "folder" / "dog", 4, (0, 0, 255), prefix="blue")  # dog: 4 red + 4 blue
    splits, note = load_splits("folder", folder, image_size=32, nc=3)
    x = np.concatenate([splits["train"][0], splits["test"][0]])
    y = np.concatenate([splits["train"][1], splits["test"][1]])
    assert np.bincount(y).tolist() == [4, 8]  # labels from the folder names, sorted: cat 0, dog 1
    assert len(splits["test"][1]) == 3 and set(splits["test"][1]) == {0, 1}  # stratified 25%
    blue = x[:, 2].mean(axis=(1, 2)) > 0.9
    assert set(y[blue]) == {1}

    with pytest.raises(UserError, match="class sub-folders"):
        load_splits("folder", fx.write_images(tmp_path / "flat", 4), image_size=32, nc=3)
