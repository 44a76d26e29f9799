"""The paper's representation-learning test (section 5.1): how good are D's features for classification?

Protocol, as in the paper and fixing the model zoo's version of it:
  features   every conv stage of D, each max-pooled to a 4x4 grid, flattened and concatenated
             (32 px model-zoo D: (128 + 256 + 512) * 16 = 14,336 dims)
  scaling    StandardScaler with the statistics of the training examples only (the model zoo refits it on the
             test set, which leaks test statistics into the classifier)
  classifier a linear L2-SVM (LinearSVC), C chosen on a validation split held out from the training examples,
             then refitted on all of them; the model zoo's RBF SVC as an option
  labels     --num_labels N: N training examples in all, the same number per class (the paper's SVHN test)
  baselines  on the same split: the same D untrained (the initialisation train.py uses) and raw pixels, so the
             number says what training bought
"""
import os
import warnings

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops
import numpy as np

from src.errors import UserError

GRID = 4  # each stage is max-pooled to GRID x GRID
# Candidate C per classifier: the linear SVM on thousands of standardised dims wants strong regularisation; the RBF
# SVC (whose features are distances, not dims) has its usual range around scikit-learn's default C = 1.
C_GRIDS = {"linear": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "svc": (0.1, 1.0, 10.0, 100.0)}
VALIDATION_FRACTION = 0.2
CLASSIFIERS = ("linear", "svc")


class FeatureExtractor(nn.Cell):
    """Images (B, nc, S, S) -> D features (B, sum_i C_i * GRID * GRID): what verify.py classifies and
    export.py --net D writes. `netD` keeps its weights; the extractor adds only the pooling."""

    def __init__(self, netD, image_size):
        super().__init__()
        self.netD = netD
        sizes = [image_size // 2 ** (i + 1) for i in range(len(netD.blocks))]  # each stage halves H and W
        self.pools = nn.CellList([nn.MaxPool2d(kernel_size=s // GRID, stride=s // GRID) for s in sizes])
        self.stage_dims = [block[0].out_channels * GRID * GRID for block in netD.blocks]
        self.set_train(False)

    def construct(self, x):
        stages = self.netD.features(x)
        pooled = []
        for i in range(len(stages)):
            pooled.append(ops.reshape(self.pools[i](stages[i]), (x.shape[0], -1)))
        return ops.concat(pooled, axis=1)


def extract(extractor, images, batch_size=128):
    """D features of `images` as float32 numpy (N, D)."""
    from src.generate import run_batched
    return run_batched(lambda x: extractor(ms.Tensor(x)).asnumpy(), images, batch_size)


def balanced_subset(labels, num_labels, seed):
    """Indices of `num_labels` examples, the same number of each class (the first classes take one more when
    num_labels is not a multiple), drawn with `seed`."""
    classes = np.unique(labels)
    per_class = num_labels // len(classes)
    if per_class < 2:
        raise UserError(f"--num_labels {num_labels} is too few for {len(classes)} classes: the protocol needs at "
                        f"least 2 per class (one to train, one to validate C), so at least {2 * len(classes)}")
    rng = np.random.default_rng(seed)
    chosen = []
    for i, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        want = per_class + (i < num_labels % len(classes))
        if len(members) < want:
            raise UserError(f"--num_labels {num_labels} needs {want} training examples of class {label}, "
                            f"the training split has {len(members)}")
        chosen.append(rng.choice(members, want, replace=False))
    return np.sort(np.concatenate(chosen))


def make_classifier(kind, C, seed=0):
    """StandardScaler + SVM as one pipeline: fit() fits the scaler on the rows it is given, and only on them."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if kind == "linear":
        # Squared hinge + L2 penalty: the paper's L2-SVM. tol: liblinear's own default for this solver is 0.1;
        # scikit-learn's 1e-4 took 3x the iterations of 1e-3 on digits features for the same test accuracy.
        svm = LinearSVC(C=C, tol=1e-3, max_iter=2000, random_state=seed)
    elif kind == "svc":
        svm = SVC(C=C, kernel="rbf", gamma="scale")  # the model zoo's classifier
    else:
        raise UserError(f"unknown classifier '{kind}'; choose one of: {', '.join(CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), svm)


def fit_and_score(train_x, train_y, test_x, test_y, kind="linear", seed=0, c_grid=None, jobs=None):
    """Choose C on a stratified validation split of the training examples, refit on all of them, score the test
    set. Returns ({"accuracy", "C", "val_accuracy"}, fitted pipeline).

    The candidate C are fitted in `jobs` threads (default: one per CPU, at most one per C): liblinear and libsvm
    release the GIL. Each fit holds its own double-precision copy of the data, so memory grows with `jobs`."""
    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    if kind not in CLASSIFIERS:
        raise UserError(f"unknown classifier '{kind}'; choose one of: {', '.join(CLASSIFIERS)}")
    c_grid = c_grid or C_GRIDS[kind]
    fit_idx, val_idx = train_test_split(np.arange(len(train_y)), test_size=VALIDATION_FRACTION,
                                        stratify=train_y, random_state=seed)
    jobs = jobs or min(len(c_grid), os.cpu_count() or 1)
    with warnings.catch_warnings():  # here, not in the threads: the warning filters are process-wide
        # liblinear stopping at max_iter still gives a classifier; its validation score is what counts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        candidates = Parallel(n_jobs=jobs, prefer="threads")(
            delayed(make_classifier(kind, C, seed).fit)(train_x[fit_idx], train_y[fit_idx]) for C in c_grid)
        scores = [model.score(train_x[val_idx], train_y[val_idx]) for model in candidates]
        best = int(np.argmax(scores))  # the smallest C among equals: the most regularised
        model = make_classifier(kind, c_grid[best], seed).fit(train_x, train_y)
    result = {"accuracy": round(float(model.score(test_x, test_y)), 4), "C": c_grid[best],
              "val_accuracy": round(float(scores[best]), 4)}
    return result, model


def _last_stage(features, extractor):
    """The last D stage's part of the features, averaged over its 4x4 grid: (N, C_last), for Fréchet distances
    (the full feature vector has more dimensions than a test set has images)."""
    dims = extractor.stage_dims[-1]
    return features[:, -dims:].reshape(len(features), dims // (GRID * GRID), GRID * GRID).mean(axis=2)


def frechet_report(ckpt_file, arch, extractor, train_features, test_features, seed, batch_size):
    """Fréchet distances in the trained D's last-stage features: real test images vs as many generated by the
    generator saved with this discriminator, and real train vs real test (what a perfect generator would score at
    this sample size). None when no such generator is found."""
    from src import trained
    from src.generate import latent, run_batched
    from src.metrics import frechet_distance

    g_file = os.path.join(os.path.dirname(ckpt_file),
                          os.path.basename(ckpt_file).replace("discriminator_", "generator_"))
    if g_file == ckpt_file or not os.path.isfile(g_file):
        return None
    netG, g_arch, _ = trained.load(g_file, "G")
    if (g_arch["image_size"], g_arch["nc"]) != (arch["image_size"], arch["nc"]):
        return None
    count = len(test_features)
    fakes = run_batched(lambda z: netG(ms.Tensor(z)).asnumpy(), latent(seed, count, g_arch["nz"]), batch_size)
    real = _last_stage(test_features, extractor)
    generated = _last_stage(extract(extractor, fakes, batch_size), extractor)
    train = _last_stage(train_features[:count], extractor)
    return {"features": f"trained D last stage ({real.shape[1]} channels, 4x4 mean), {count} images per set",
            "generator": g_file,
            "real_vs_generated": float(f"{frechet_distance(real, generated):.5g}"),
            "train_vs_test": float(f"{frechet_distance(train, real):.5g}")}


def run(ckpt_path, dataset, data_path=None, num_labels=None, classifier="linear", seed=0, batch_size=128,
        overrides=None, jobs=None):
    """The whole test for the discriminator of `ckpt_path` (checkpoint or run directory). Returns the report."""
    import time

    from src import trained
    from src.init import init_weights
    from src.labelled_data import load_splits

    started = time.time()
    if classifier not in CLASSIFIERS:
        raise UserError(f"unknown classifier '{classifier}'; choose one of: {', '.join(CLASSIFIERS)}")
    netD, arch, ckpt_file = trained.load(ckpt_path, "D", overrides)
    splits, split_note = load_splits(dataset, data_path, arch["image_size"], arch["nc"], seed)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    if num_labels is not None:
        chosen = balanced_subset(train_y, num_labels, seed)
        train_x, train_y = train_x[chosen], train_y[chosen]

    untrained = trained.build(arch)
    init_weights(untrained, np.random.default_rng(seed))  # train.py's initialisation, never trained
    extractors = {"trained_d": FeatureExtractor(netD, arch["image_size"]),
                  "untrained_d": FeatureExtractor(untrained, arch["image_size"])}
    results = {}
    for name in ("trained_d", "untrained_d", "raw_pixels"):
        if name == "raw_pixels":
            train_f, test_f = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
        else:
            train_f, test_f = (extract(extractors[name], x, batch_size) for x in (train_x, test_x))
        if name == "trained_d":
            trained_features = (train_f, test_f)
        results[name], _ = fit_and_score(train_f, train_y, test_f, test_y, classifier, seed, jobs=jobs)
        results[name]["dims"] = int(train_f.shape[1])

    frechet = frechet_report(ckpt_file, arch, extractors["trained_d"], *trained_features, seed, batch_size)
    return {"accuracy": results["trained_d"]["accuracy"],
            "baselines": {"untrained_d": results["untrained_d"]["accuracy"],
                          "raw_pixels": results["raw_pixels"]["accuracy"]},
            "classifier": classifier, "dataset": dataset, "split": split_note,
            "num_train": int(len(train_y)), "num_test": int(len(test_y)), "num_classes": int(len(np.unique(train_y))),
            "num_labels": num_labels, "features": results, "frechet_distance": frechet,
            "checkpoint": ckpt_file, "seed": seed, "seconds": round(time.time() - started, 1)}
