"""The paper's representation-learning test (section 5.1): how good are D's features for classification?

Protocol, as in the paper and fixing the model zoo's version of it:
  features   every conv stage of D, each max-pooled to a 4x4 grid, flattened and concatenated
             (32 px model-zoo D: (128 + 256 + 512) * 16 = 14,336 dims)
  scaling    StandardScaler with the statistics of the training examples only (the model zoo refits it on the
             test set, which leaks test statistics into the classifier)
  classifier a linear L2-SVM (LinearSVC), C chosen on a validation split held out from the training examples,
             then refitted on all of them; the model zoo's RBF SVC as an option. liblinear is handed the same
             problem in at most N dims (see _compact: the same iterates, 10x less work on D features), and the
             fits of all three feature sets share a pool of worker processes
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
    from src.outputs.generate import run_batched
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


def check_classifier(kind):
    if kind not in CLASSIFIERS:
        raise UserError(f"unknown classifier '{kind}'; choose one of: {', '.join(CLASSIFIERS)}")


def make_classifier(kind, C, seed=0):
    """StandardScaler + SVM as one pipeline: fit() fits the scaler on the rows it is given, and only on them.
    fit_and_score() computes the same linear fit faster (see _compact) and returns it in this form."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    check_classifier(kind)
    svm = _linear_svm(C, seed) if kind == "linear" else SVC(C=C, kernel="rbf", gamma="scale")  # svc: the model zoo's
    return make_pipeline(StandardScaler(), svm)


def _linear_svm(C, seed, dual="auto", fit_intercept=True):
    from sklearn.svm import LinearSVC

    # Squared hinge + L2 penalty: the paper's L2-SVM. tol: liblinear's own default for this solver is 0.1;
    # scikit-learn's 1e-4 took 3x the iterations of 1e-3 on digits features for the same test accuracy.
    # dual="auto" is liblinear's dual coordinate descent when examples < dims (D features), else its primal
    # trust-region Newton method (raw pixels).
    return LinearSVC(C=C, tol=1e-3, max_iter=2000, random_state=seed, dual=dual, fit_intercept=fit_intercept)


def _compact(x):
    """The liblinear problem of the standardised rows `x` (N, D), written in at most N dims: (z, fit_intercept,
    to_original), where LinearSVC(fit_intercept=fit_intercept).fit(z, y) takes the same steps as
    LinearSVC().fit(x, y) and to_original(svm) gives the (coef_, intercept_) of that fit in x's D dims.

    Both liblinear solvers see the rows only through inner products: dual coordinate descent (N < D) through
    x_i . x_j + 1 (its intercept is a constant feature of value 1, penalised like the weights), the primal Newton
    method (N >= D) through products with vectors in the rows' span (it has no preconditioner, so a rotation of the
    features changes nothing). So any rows with the same inner products give the same iterates, the same random
    coordinate order and the same stopping point, up to rounding. Both are a QR factorisation, whose Q maps the
    weights back exactly, whatever the rows' rank:
      N < D   z = R^T with [x 1]^T = Q R, the intercept inside z (z z^T = x x^T + 1); lower triangular, so
              liblinear, which skips zeros, sees N^2/2 numbers instead of N * D (7 168 -> ~540 per digits row);
      N >= D  z = R^T with x^T = Q R (a rotation; trapezoidal, half the numbers of x)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n < d:
        basis, r = np.linalg.qr(np.hstack([x, np.ones((n, 1))]).T)

        def to_original(svm):
            weights = svm.coef_ @ basis.T  # in [x 1]'s dims: the last one is the intercept
            return weights[:, :d], weights[:, d]
        return np.ascontiguousarray(r.T), False, to_original
    basis, r = np.linalg.qr(x.T)
    return np.ascontiguousarray(r.T), True, lambda svm: (svm.coef_ @ basis.T, svm.intercept_)


class _Task:
    """One feature set's search: the rows it fits, per phase (C search on the fit split, then the refit on all)."""

    def __init__(self, kind, seed, train_x, train_y):
        from sklearn.model_selection import train_test_split

        self.kind, self.seed, self.train_x, self.train_y = kind, seed, train_x, train_y
        self.fit_idx, self.val_idx = train_test_split(np.arange(len(train_y)), test_size=VALIDATION_FRACTION,
                                                      stratify=train_y, random_state=seed)

    def prepare(self, rows):
        """(scaler, z, fit_intercept, to_original) for the training examples `rows` (see _compact); for the RBF
        SVC (None, the rows, None, None): its pipeline scales them itself."""
        from sklearn.preprocessing import StandardScaler

        x = self.train_x[rows]
        if self.kind != "linear":
            return None, x, None, None
        scaler = StandardScaler().fit(x)  # the training rows' statistics only
        return (scaler, *_compact(scaler.transform(x)))

    def estimator(self, prepared, C):
        _, z, fit_intercept, _ = prepared
        if self.kind != "linear":
            return make_classifier(self.kind, C, self.seed)
        dual = len(z) < self.train_x.shape[1]  # what dual="auto" picks for the original rows
        return _linear_svm(C, self.seed, dual=dual, fit_intercept=fit_intercept)

    def model(self, prepared, fitted):
        """The fitted classifier as the pipeline make_classifier(...).fit(rows) gives: scaler, then the SVM with
        its weights in the feature space."""
        from sklearn.pipeline import make_pipeline

        scaler, _, _, to_original = prepared
        if self.kind != "linear":
            return fitted
        fitted.coef_, fitted.intercept_ = to_original(fitted)
        fitted.n_features_in_ = self.train_x.shape[1]
        fitted.set_params(dual="auto", fit_intercept=True)  # the parameters of the fit it equals
        return make_pipeline(scaler, fitted)


def fit_and_score_all(problems, kind="linear", seed=0, c_grid=None, jobs=None):
    """fit_and_score for several feature sets (train_x, train_y, test_x, test_y) at once: their candidate C are
    fitted together in `jobs` worker processes (default: one per CPU), then their refits. Returns a list of
    (result, model) in order."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.parallel import Parallel, delayed  # these pass the warning filters on to the workers

    check_classifier(kind)
    c_grid = tuple(c_grid or C_GRIDS[kind])
    tasks = [_Task(kind, seed, np.asarray(p[0]), np.asarray(p[1])) for p in problems]
    searches = [task.prepare(task.fit_idx) for task in tasks]
    # Largest C first: they take the most iterations, so the short fits fill the gaps at the end.
    order = [(C, i) for C in sorted(c_grid, reverse=True) for i in range(len(tasks))]
    jobs = jobs or os.cpu_count() or 1
    # Processes, not threads: liblinear draws its random coordinate order from one generator per process, reseeded
    # by every fit, so fits running at once in one process would change each other's order (and results).
    with warnings.catch_warnings(), Parallel(n_jobs=min(jobs, len(order)), return_as="generator") as parallel:
        # liblinear stopping at max_iter still gives a classifier; its validation score is what counts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = parallel(delayed(tasks[i].estimator(searches[i], C).fit)(searches[i][1],
                                                                         tasks[i].train_y[tasks[i].fit_idx])
                        for C, i in order)
        refits = [task.prepare(np.arange(len(task.train_y))) for task in tasks]  # while the workers fit
        scores = [{} for _ in tasks]
        for (C, i), fitted in zip(order, list(fits)):
            task = tasks[i]
            model = task.model(searches[i], fitted)
            scores[i][C] = model.score(task.train_x[task.val_idx], task.train_y[task.val_idx])
        best = [c_grid[int(np.argmax([s[C] for C in c_grid]))] for s in scores]  # the smallest C among equals
        final = parallel(delayed(task.estimator(refits[i], best[i]).fit)(refits[i][1], task.train_y)
                         for i, task in enumerate(tasks))
        models = [task.model(refits[i], fitted) for i, (task, fitted) in enumerate(zip(tasks, final))]
    return [({"accuracy": round(float(model.score(test_x, test_y)), 4), "C": best[i],
              "val_accuracy": round(float(scores[i][best[i]]), 4)}, model)
            for i, (model, (_, _, test_x, test_y)) in enumerate(zip(models, problems))]


def fit_and_score(train_x, train_y, test_x, test_y, kind="linear", seed=0, c_grid=None, jobs=None):
    """Choose C on a stratified validation split of the training examples, refit on all of them, score the test
    set. Returns ({"accuracy", "C", "val_accuracy"}, fitted pipeline). The candidate C are fitted in `jobs` worker
    processes (default: one per CPU)."""
    return fit_and_score_all([(train_x, train_y, test_x, test_y)], kind, seed, c_grid, jobs)[0]


def _last_stage(features, extractor):
    """The last D stage's part of the features, averaged over its 4x4 grid: (N, C_last), for Fréchet distances
    (the full feature vector has more dimensions than a test set has images)."""
    dims = extractor.stage_dims[-1]
    return features[:, -dims:].reshape(len(features), dims // (GRID * GRID), GRID * GRID).mean(axis=2)


def frechet_report(ckpt_file, arch, extractor, train_features, test_features, seed, batch_size):
    """Fréchet distances in the trained D's last-stage features: real test images vs as many generated by the
    generator saved with this discriminator, and real train vs real test (what a perfect generator would score at
    this sample size). None when no such generator is found."""
    from src.run import trained
    from src.outputs.generate import latent, run_batched
    from src.evaluation.frechet import frechet_distance

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

    from src.run import trained
    from src.weight_init import init_weights
    from src.data.labelled import load_splits

    started = time.time()
    check_classifier(classifier)
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
    features = {}
    for name in ("trained_d", "untrained_d", "raw_pixels"):
        if name == "raw_pixels":
            features[name] = (train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1))
        else:
            features[name] = tuple(extract(extractors[name], x, batch_size) for x in (train_x, test_x))
    seconds = {"load_and_features": time.time() - started}
    fits = fit_and_score_all([(f[0], train_y, f[1], test_y) for f in features.values()], classifier, seed,
                             jobs=jobs)
    results = {}
    for name, (result, _) in zip(features, fits):
        results[name] = dict(result, dims=int(features[name][0].shape[1]))
    seconds["svm"] = time.time() - started - seconds["load_and_features"]

    frechet = frechet_report(ckpt_file, arch, extractors["trained_d"], *features["trained_d"], seed, batch_size)
    seconds["frechet"] = time.time() - started - sum(seconds.values())
    return {"accuracy": results["trained_d"]["accuracy"],
            "baselines": {"untrained_d": results["untrained_d"]["accuracy"],
                          "raw_pixels": results["raw_pixels"]["accuracy"]},
            "classifier": classifier, "dataset": dataset, "split": split_note,
            "num_train": int(len(train_y)), "num_test": int(len(test_y)), "num_classes": int(len(np.unique(train_y))),
            "num_labels": num_labels, "features": results, "frechet_distance": frechet,
            "checkpoint": ckpt_file, "seed": seed, "seconds": round(time.time() - started, 1),
            "seconds_by_part": {part: round(value, 1) for part, value in seconds.items()}}
