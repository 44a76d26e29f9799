"""Sample quality of a generator, measured offline: `QualityJudge` for the trainer, calc_metrics.py for users.

Metrics (all: lower is better; 0 for a generator that reproduces the real distribution, up to sampling noise):
  swd   sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018), x1e3, the average of the
        levels (32 px: 32 and 16; 64 px: 64, 32 and 16), with the levels in "swd_levels". Needs no network, works
        on every dataset. See swd.py.
  cfid  Fréchet distance on the features of a small classifier trained once on the dataset's own labels (see
  ckid  classifier.py), and the kernel distance (KID, unbiased MMD^2, cubic polynomial kernel) on them: FID and
        KID with a network this project trains itself, for labelled datasets (LABELLED). The numbers compare runs
        of this project on the same data and image size; they are not the FID of papers (Inception features).
  fid   the same two distances on a feature network the user supplies (feature_model: a .mindir or .onnx file,
  kid   see feature_model.py), e.g. an Inception exported to ONNX for paper-comparable FID.

The reference ("real") images:
  labelled datasets   the test split of src/data/labelled.load_splits (the official one of CIFAR-10 and MNIST; for
                      digits and class folders a fixed stratified quarter), whose training split trains the classifier
  the others          images read with the training pipeline (src/dataset.create_dataset): its test split where the
                      dataset has one, else the whole dataset; a seeded random sample of them
At most MAX_REFERENCE (10,000) reference images are kept, a seeded sample of larger test sets. They are turned into
what the metrics compare (SWD quantile tables, feature statistics) when the judge is built, and then dropped: a
judge holds no images. Building a judge for cfid/ckid also reads the whole training split once, to fingerprint it
(and train the classifier on it when no cached one matches): CIFAR-10's 50,000 images take 600 MB at 32 px for
that moment.
"""
import os
import time

import numpy as np

from src.errors import UserError
from src.files import user_cache_dir

LABELLED = ("digits", "mnist", "cifar10", "folder")  # "folder": only when the images are in class sub-folders
METRICS = ("swd", "cfid", "ckid", "fid", "kid")
CLASSIFIER_METRICS = ("cfid", "ckid")
FEATURE_MODEL_METRICS = ("fid", "kid")
PRIMARY_ORDER = ("cfid", "swd", "fid", "ckid", "kid")  # the first one measured picks the best checkpoint
MAX_REFERENCE = 10_000  # real images read at most
GENERATE_BATCH = 250  # latent vectors per generator call
SPLIT_SEED = 0  # the train/test split of datasets without an official one (= src/data/labelled.py's, verify.py's)
READ_BATCH = 256
FAKE_REFERENCE = 1000  # images of the fake dataset (random noise) read as its reference


def _dataset_names():
    from src.config import DATASET_NAMES
    return DATASET_NAMES


def default_metrics(labelled, feature_model=None):
    """The cheap default set: swd, plus cfid and ckid on labelled data, plus fid and kid given a feature model."""
    metrics = ("swd",) + (CLASSIFIER_METRICS if labelled else ())
    return metrics + (FEATURE_MODEL_METRICS if feature_model else ())


def parse_metrics(text):
    """'swd,cfid' -> ('swd', 'cfid'); UserError for unknown names."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in str(text).split(",") if n.strip()))
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric {', '.join(unknown) or repr(text)}; choose from: {', '.join(METRICS)}")
    return names


def _resolve_name(dataset, data_path):
    if dataset not in _dataset_names():
        raise UserError(f"unknown dataset '{dataset}'; choose one of: {', '.join(_dataset_names())}")
    if dataset == "auto":
        from src.data import detect_format
        return detect_format(data_path)
    return dataset


def _is_labelled(name, data_path):
    if name not in LABELLED:
        return False
    if name == "folder":
        from src.data import image_subdirs
        return bool(data_path) and os.path.isdir(data_path) and bool(image_subdirs(os.path.abspath(data_path)))
    return True


def _sample(images, limit, seed):
    """At most `limit` of the images, a seeded random choice kept in order."""
    if len(images) <= limit:
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False))]


def _read_unlabelled(name, data_path, image_size, nc, seed, log):
    """(images, reference text) of a dataset read with the training pipeline: its test split if it has one."""
    import inspect

    from src.dataset import create_dataset
    options = dict(image_size=image_size, batch_size=READ_BATCH, nc=nc, shuffle=True, seed=seed,
                   drop_remainder=False, num_samples=MAX_REFERENCE)
    if name == "fake":
        options["fake_size"] = FAKE_REFERENCE
    pipeline, info = None, None
    if "split" in inspect.signature(create_dataset).parameters:
        try:
            pipeline, info = create_dataset(name, data_path, split="test", **options)
        except UserError:
            pipeline = None  # no test images on disk: read the training images below
    if pipeline is None:
        pipeline, info = create_dataset(name, data_path, **options)
    images = [batch[0].asnumpy() for batch in info.bad_files.iterate(pipeline, info.batches_per_epoch, log)]
    images = np.concatenate(images).astype(np.float32)
    split = getattr(info, "split", "train")
    part = {"test": "test ", "train": "training "}.get(split, "")
    whole = {"test": "", "train": ""}.get(split, f" (split: {split})")
    sampled = f", a seeded sample of {info.num_images}" if len(images) < info.num_images else ""
    return images, f"{len(images)} real {info.name} {part}images{sampled}{whole}"


class QualityJudge:
    """Scores generators against one dataset's real images with a fixed choice of metrics, latent sample and seed.

    Everything is prepared here, when the judge is built (not lazily): the real images are read and reduced to what
    the metrics compare, the classifier of cfid/ckid is loaded from its cache or trained (once per dataset), the
    feature model loaded. Bad input (unknown dataset or metric, a classifier metric on unlabelled data, a missing
    feature model) raises src.errors.UserError here. Afterwards evaluate() only generates and measures.

    dataset, data_path  as train.py's --dataset / --data_path ("auto" is resolved)
    image_size, nc      of the generated images (nc=None: the dataset's own)
    metrics             a tuple of METRICS names, or None for default_metrics(): ("swd", "cfid", "ckid") on
                        LABELLED datasets, ("swd",) otherwise, plus ("fid", "kid") when feature_model is given
    num_images          generated images per evaluate() (the reference has at most MAX_REFERENCE)
    seed                seeds the latent sample, the reference sample, SWD's directions and positions, KID's subsets
    cache_dir           where the classifier checkpoint is kept (the run directory); None: next to the data when
                        that directory is writable, else ~/.cache/dcgan
    feature_model       a .mindir or .onnx feature network for fid/kid
    log                 called with one line of text for each thing worth telling (classifier accuracy, caching)

    Attributes: metrics (tuple), primary (the metric that picks the best checkpoint, lower is better: "cfid" when
    measured, else "swd", else the first measured), reference (what real images are compared), dataset (resolved).
    """

    def __init__(self, dataset, data_path, image_size, nc, metrics=None, num_images=1000, seed=0,
                 cache_dir=None, feature_model=None, log=print):
        self.log = log or (lambda line: None)
        self.dataset = _resolve_name(dataset, data_path)
        labelled = _is_labelled(self.dataset, data_path)
        if not isinstance(image_size, int) or image_size < 8:
            raise UserError(f"image size must be an integer of at least 8, not {image_size!r}")
        if nc not in (None, 1, 3):
            raise UserError(f"nc must be 1 or 3, not {nc!r}")
        if not isinstance(num_images, int) or num_images < 2:
            raise UserError(f"the number of generated images must be at least 2, not {num_images!r}")
        metrics = default_metrics(labelled, feature_model) if metrics is None else (
            parse_metrics(metrics) if isinstance(metrics, str) else parse_metrics(",".join(metrics)))
        wanted = [m for m in metrics if m in CLASSIFIER_METRICS]
        if wanted and not labelled:
            where = f" in {data_path}" if data_path else ""
            hint = " (a folder needs class sub-folders of images)" if self.dataset == "folder" else ""
            raise UserError(f"{', '.join(wanted)} need a labelled dataset ({', '.join(LABELLED)}){hint}; "
                            f"{self.dataset}{where} has no labels: use swd, or fid/kid with --feature_model")
        wanted = [m for m in metrics if m in FEATURE_MODEL_METRICS]
        if wanted and not feature_model:
            raise UserError(f"{', '.join(wanted)} need a feature network: give --feature_model (a .mindir or "
                            ".onnx file mapping images to features)")
        self.metrics = metrics
        self.primary = next(m for m in PRIMARY_ORDER if m in metrics)
        self.image_size, self.num_images, self.seed = image_size, num_images, seed
        self._latents = {}
        started = time.time()

        self._feature_model = None
        if feature_model and not any(m in FEATURE_MODEL_METRICS for m in metrics):
            self.log(f"feature model {feature_model} not used: it serves fid and kid only")
        elif feature_model:
            from src.evaluation.feature_model import FeatureModel
            self._feature_model = FeatureModel(feature_model)  # before the data: a bad file fails fast
        if labelled:
            nc = nc or (1 if self.dataset in ("digits", "mnist") else 3)
            reference, train = self._read_labelled(data_path, image_size, nc)
        else:
            reference, self.reference = _read_unlabelled(self.dataset, data_path, image_size, nc, seed, self.log)
            nc, train = reference.shape[1], None
        self.nc = nc
        self._prepare(reference, train, data_path, cache_dir)
        self.log(f"quality metrics {', '.join(self.metrics)} against {self.reference}; prepared in "
                 f"{time.time() - started:.1f} s")

    # -- preparation -------------------------------------------------------------------------------------------

    def _read_labelled(self, data_path, image_size, nc):
        from src.data.labelled import load_splits
        try:
            splits, note = load_splits(self.dataset, data_path, image_size, nc, SPLIT_SEED)
        except ValueError as error:  # scikit-learn cannot split so few images
            raise UserError(f"cannot split {self.dataset} in {data_path} into train and test images: {error}") from None
        (test_x, test_y) = splits["test"]
        chosen = _sample(np.arange(len(test_x)), MAX_REFERENCE, self.seed)
        sampled = f", a seeded sample of {len(test_x)}" if len(chosen) < len(test_x) else ""
        self.reference = f"{len(chosen)} real {self.dataset} test images{sampled}"
        self.split_note = note
        return test_x[chosen], (splits["train"], (test_x, test_y))

    def _prepare(self, reference, train, data_path, cache_dir):
        from src.evaluation.frechet import statistics
        from src.evaluation.kernel import KernelDistance
        from src.evaluation.swd import SlicedWasserstein

        self._swd = SlicedWasserstein(reference, self.seed) if "swd" in self.metrics else None
        self._spaces = {}  # metric prefix ("c" or "") -> (feature function, reference statistics, KernelDistance)
        if any(m in CLASSIFIER_METRICS for m in self.metrics):
            classifier = self._classifier(train, data_path, cache_dir)
            features = classifier.features(reference)
            self._spaces["c"] = (classifier.features, statistics(features), KernelDistance(features, self.seed))
        if self._feature_model is not None:
            features = self._feature_model.features(reference)
            self._spaces[""] = (self._feature_model.features, statistics(features),
                                KernelDistance(features, self.seed))
            self.log(f"feature model {self._feature_model.description}: {features.shape[1]} features")

    def _classifier(self, train, data_path, cache_dir):
        from src.evaluation import classifier as clf

        (train_x, train_y), (test_x, test_y) = train
        fingerprint = clf.fingerprint(train_x, train_y)
        stem = f"{clf.cache_name(self.dataset, self.image_size, self.nc)}_{fingerprint[:8]}"
        # Trained once per dataset: kept in the run directory (a moved run takes it along) and in a shared place,
        # beside the data when that directory is writable, else the user's cache, where the next run finds it.
        places = [os.path.join(cache_dir, stem)] if cache_dir else []
        if data_path and self.dataset != "digits":
            parent, base = os.path.split(os.path.abspath(data_path))
            if os.access(parent, os.W_OK):
                places.append(os.path.join(parent, f"{base}.{stem}"))  # beside the data, never inside it
        places.append(user_cache_dir(stem))
        expected = {"version": clf.FORMAT_VERSION, "image_size": self.image_size, "nc": self.nc,
                    "fingerprint": fingerprint}
        found, classifier = None, None
        for index, place in enumerate(places):
            classifier = clf.load(place, expected)
            if classifier is not None:
                found = index
                self.log(f"quality classifier {place}.ckpt: test accuracy {classifier.info['test_accuracy']:.4f} "
                         f"({classifier.info['num_classes']} classes)")
                break
        if classifier is None:
            description = f"{self.dataset} {self.image_size} px nc {self.nc} ({self.split_note})"
            classifier = clf.train(train_x, train_y, test_x, test_y, seed=SPLIT_SEED, log=self.log,
                                   description=description)
            classifier.info["fingerprint"] = fingerprint
            classifier.info["dataset"] = self.dataset
        if cache_dir and found != 0:
            clf.save(classifier, places[0], self.log)
        if found is None:  # trained here: shared for the next run (the first writable place)
            shared = places[1:] if cache_dir else places
            next((place for place in shared if clf.save(classifier, place, self.log)), None)
        return classifier

    # -- measuring ---------------------------------------------------------------------------------------------

    def latent(self, nz):
        """The fixed latent sample (num_images, nz, 1, 1) of every evaluate(): src.outputs.generate.latent(seed, ..)."""
        if nz not in self._latents:
            from src.outputs.generate import latent
            self._latents[nz] = latent(self.seed, self.num_images, nz)
        return self._latents[nz]

    def evaluate(self, generate, nz):
        """Draw num_images images with generate(z) (z float32 (B, nz, 1, 1) -> images (B, nc, S, S) in [-1, 1]) from
        the fixed latent sample, in batches of at most GENERATE_BATCH, and score them: {metric: float, ...,
        "swd_levels": [...] (with swd), "num_images": N, "reference": text}."""
        from src.outputs.generate import run_batched
        z = self.latent(nz)
        images = run_batched(lambda batch: np.asarray(generate(batch)), z, min(GENERATE_BATCH, len(z)))
        result = self.score(images)
        result.update(num_images=int(len(images)), reference=self.reference)
        return result

    def score(self, images):
        """The metrics of any images (N, nc, S, S) in [-1, 1] against the reference: {metric: float, ...}."""
        images = np.asarray(images, np.float32)
        expected = (self.nc, self.image_size, self.image_size)
        if images.ndim != 4 or images.shape[1:] != expected or len(images) < 2:
            raise UserError(f"images to score must be (N >= 2, {', '.join(map(str, expected))}), got {images.shape}")
        if not np.isfinite(images).all():
            raise UserError("the generated images contain NaN or infinite values")
        from src.evaluation.frechet import frechet_distance_from_statistics, statistics
        result = {}
        if self._swd is not None:
            swd = self._swd(images)
            result["swd"] = _round(swd["swd"])
            result["swd_levels"] = [_round(v) for v in swd["swd_levels"]]
        for prefix, (features_of, reference_stats, kernel) in self._spaces.items():
            features = features_of(images)
            if prefix + "fid" in self.metrics:
                result[prefix + "fid"] = _round(frechet_distance_from_statistics(*statistics(features),
                                                                                 *reference_stats))
            if prefix + "kid" in self.metrics:
                result[prefix + "kid"] = _round(kernel(features))
        return {key: result[key] for key in METRICS + ("swd_levels",) if key in result}


def _round(value):
    """Six significant digits: enough to rank checkpoints, short in a JSON line."""
    return float(f"{value:.6g}")
