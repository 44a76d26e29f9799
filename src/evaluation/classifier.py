"""The small classifier whose features the classifier FID and KID (cfid, ckid) compare.

FID's Inception network cannot be downloaded here, and on 8x8 digits or 28x28 MNIST its ImageNet features say
little anyway. Instead the project trains, once per (dataset, image size, channels), a small convolutional
classifier on the dataset's own training labels and keeps it as a checkpoint; its penultimate layer
(FEATURE_DIM = 64 values, low enough for a well-conditioned covariance from a few hundred test images) is the
feature space. Distances in it compare runs of this project on the same data; they are not comparable with FID
numbers in papers.

Network (PatchClassifier): a stack of 4x4 stride-2 convolutions with padding 1 and ReLU, as D's (S -> S/2 -> ...
-> 4x4; widths 32, 64, 128, 128), then Dense(4*4*width -> 64) (the features: taken before its ReLU, where no
dimension is ever constant), ReLU and Dense(64 -> classes). The features are standardised per dimension by their
mean and deviation over the training images (stored with the checkpoint), so that the kernel distance, which is not
scale-invariant, sees values of order 1 on every dataset, and the Fréchet distance is in units of the features'
spread. Each convolution is written as a reshape, two gathers and one matrix product (`windows`): it runs at full
speed on any CPU (MindSpore's NCHW Conv2d takes oneDNN's slow reference path on AVX-512 CPUs unless
src/cpu/device.py caps the instruction set, which training with the project's own kernels does not) and on
GPU/Ascend alike. Overlapping 4x4 windows see strokes across patch borders: 99.0% on MNIST's test set after 3
epochs (98.4% on digits), where disjoint 2x2 patches (the network of FORMAT_VERSION 1) reached 97.7%.

Training: Adam (lr 1e-3, falling linearly to 0), batches of 64, cross-entropy; weights drawn from a NumPy generator
seeded by `seed` and batches shuffled by it too (MindSpore's global seed is left alone: the trainer calls this
mid-run). Epochs: enough for about TARGET_STEPS steps, between MIN_EPOCHS and MAX_EPOCHS. The test accuracy is
logged and stored.

Cache: <dir>/quality_classifier_<dataset>_<S>px_nc<nc>_<fingerprint>.ckpt and a .json beside it (accuracy, classes,
a fingerprint of the training data: a different data set under the same name is retrained, not reused), kept in the
run directory and in a shared place (src/evaluation/judge.py), so it is trained once per dataset.
"""
import hashlib
import json
import os
import time

import numpy as np

FEATURE_DIM = 64
WIDTHS = (32, 64, 128, 128)
BATCH = 64
LEARNING_RATE = 1e-3
TARGET_STEPS = 300
MIN_EPOCHS, MAX_EPOCHS = 3, 30
FEATURE_BATCH = 250  # images per forward pass when extracting features
FORMAT_VERSION = 2  # bump when the network or its training changes: older caches are retrained


def cache_name(dataset, image_size, nc):
    return f"quality_classifier_{dataset}_{image_size}px_nc{nc}"


def fingerprint(images, labels):
    """A short hash of the training data (labels, and a sample of the images' bytes)."""
    digest = hashlib.sha1()
    digest.update(np.asarray(labels, np.int64).tobytes())
    step = max(1, len(images) // 64)
    digest.update(np.ascontiguousarray(images[::step], np.float32).round(3).tobytes())
    digest.update(repr(images.shape).encode())
    return digest.hexdigest()[:16]


def _network_class():
    import mindspore as ms
    import mindspore.nn as nn
    import mindspore.ops as ops

    class PatchClassifier(nn.Cell):
        """Images (B, nc, S, S) -> class logits; features(x) -> (B, FEATURE_DIM), the penultimate layer before its
        ReLU. See the module docstring."""

        def __init__(self, image_size, nc, num_classes):
            super().__init__()
            stages = 0
            while image_size // 2 ** stages > 4:
                stages += 1
            widths = WIDTHS[:stages] if stages <= len(WIDTHS) else WIDTHS + (WIDTHS[-1],) * (stages - len(WIDTHS))
            inputs = (nc,) + tuple(widths[:-1])
            self.convs = nn.CellList([nn.Dense(16 * c_in, c_out) for c_in, c_out in zip(inputs, widths)])
            self.hidden = nn.Dense(4 * 4 * widths[-1], FEATURE_DIM)
            self.out = nn.Dense(FEATURE_DIM, num_classes)
            self.relu = nn.ReLU()

        def features(self, x):
            x = ops.transpose(x, (0, 2, 3, 1))  # NHWC: a window's pixels are then rows of C contiguous values
            for conv in self.convs:
                b, h, w, _ = x.shape
                x = self.relu(conv(self.windows(x)))
                x = ops.reshape(x, (b, h // 2, w // 2, -1))
            return self.hidden(ops.reshape(x, (x.shape[0], -1)))

        def windows(self, x):
            """The 4x4 windows at stride 2 of NHWC images padded by 1, as rows: (B*H/2*W/2, 16*C). Padded, the
            image is a grid of disjoint 2x2 patches (one reshape), and each window is the 2x2 block of patches at
            its position: gathered along each axis by constant indices (StridedSlice's gradient corrupted memory
            on MindSpore 2.10's CPU backend after a few hundred steps)."""
            b, h, w, c = x.shape
            oh, ow = h // 2, w // 2
            x = ops.concat((ops.zeros((b, 1, w, c), x.dtype), x, ops.zeros((b, 1, w, c), x.dtype)), axis=1)
            x = ops.concat((ops.zeros((b, h + 2, 1, c), x.dtype), x, ops.zeros((b, h + 2, 1, c), x.dtype)), axis=2)
            x = ops.reshape(x, (b, oh + 1, 2, ow + 1, 2, c))
            x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (b, oh + 1, ow + 1, 4 * c))
            rows = ops.gather(x, self.neighbours(oh), 1)  # (b, 2*oh, ow+1, 4c): patch rows i and i+1 for each i
            x = ops.gather(rows, self.neighbours(ow), 2)  # (b, 2*oh, 2*ow, 4c)
            x = ops.reshape(x, (b, oh, 2, ow, 2, 4 * c))
            return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (b * oh * ow, 16 * c))

        def neighbours(self, n):
            """Indices 0, 1, 1, 2, 2, 3, ..., n-1, n: each patch position with the next one."""
            return ms.Tensor(np.repeat(np.arange(n + 1), 2)[1:-1], ms.int32)

        def construct(self, x):
            return self.out(self.relu(self.features(x)))

    return PatchClassifier


def build(image_size, nc, num_classes, seed=0):
    """A PatchClassifier with He-normal weights from NumPy generator `seed`, zero biases."""
    import mindspore as ms

    network_class = _network_class()
    net = network_class(image_size, nc, num_classes)
    rng = np.random.default_rng(seed)
    for param in net.trainable_params():
        shape = tuple(param.shape)
        if param.name.endswith("bias"):
            value = np.zeros(shape, np.float32)
        else:  # nn.Dense weight: (out, in)
            value = (rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])).astype(np.float32)
        param.set_data(ms.Tensor(value))
    return net


class Classifier:
    """A trained PatchClassifier: features(images) -> (N, FEATURE_DIM) float64, accuracy(images, labels).

    Its forward passes are compiled (mindspore.jit) whatever the context's mode: in PyNative mode, op by op, they
    and the training are ten times slower."""

    def __init__(self, net, info):
        import mindspore as ms

        self.net, self.info = net, info
        self.net.set_train(False)

        def logits(x):
            return net(x)

        def features(x):
            return net.features(x)

        self._logits, self._raw_features = ms.jit(logits), ms.jit(features)

    def _run(self, forward, images):
        import mindspore as ms

        from src.outputs.generate import run_batched
        images = np.asarray(images, np.float32)
        batch = min(FEATURE_BATCH, len(images))
        return run_batched(lambda x: forward(ms.Tensor(x)).asnumpy(), images, batch)

    def features(self, images):
        """(N, FEATURE_DIM) float64, standardised by the training images' feature mean and deviation."""
        raw = self._run(self._raw_features, images).astype(np.float64)
        if "feature_mean" not in self.info:
            return raw
        return (raw - np.asarray(self.info["feature_mean"])) / np.asarray(self.info["feature_std"])

    def accuracy(self, images, labels):
        return float(np.mean(np.argmax(self._run(self._logits, images), axis=1) == labels))


def train(train_x, train_y, test_x, test_y, seed=0, epochs=None, log=print, description="classifier"):
    """Train a PatchClassifier; returns a Classifier whose info holds the test accuracy and how it was trained."""
    import mindspore as ms
    import mindspore.nn as nn

    started = time.time()
    image_size, nc = train_x.shape[-1], train_x.shape[1]
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    net = build(image_size, nc, num_classes, seed)
    batch = min(BATCH, len(train_x))
    steps_per_epoch = len(train_x) // batch
    if epochs is None:
        epochs = int(np.clip(np.ceil(TARGET_STEPS / steps_per_epoch), MIN_EPOCHS, MAX_EPOCHS))
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    # The learning rate falls linearly to zero over the run: the last epochs settle into a minimum (+0.4 points
    # of test accuracy on MNIST over a constant rate: 99.04% against 98.65%).
    total = epochs * steps_per_epoch
    schedule = [LEARNING_RATE * (1.0 - step / total) for step in range(total)]
    optimizer = nn.Adam(net.trainable_params(), learning_rate=schedule)

    def forward(x, y):
        return loss_fn(net(x), y)

    gradient = ms.value_and_grad(forward, None, optimizer.parameters)

    @ms.jit  # compiled in PyNative mode too (see Classifier)
    def step(x, y):
        loss, grads = gradient(x, y)
        optimizer(grads)
        return loss

    net.set_train(True)
    rng = np.random.default_rng([seed, 1])
    labels = train_y.astype(np.int32)
    for _ in range(epochs):
        order = rng.permutation(len(train_x))
        for i in range(steps_per_epoch):
            chosen = np.sort(order[i * batch:(i + 1) * batch])
            step(ms.Tensor(train_x[chosen]), ms.Tensor(labels[chosen]))
    net.set_train(False)
    classifier = Classifier(net, {})
    accuracy = classifier.accuracy(test_x, test_y)
    raw = classifier.features(train_x)
    seconds = time.time() - started
    classifier.info = {"feature_mean": raw.mean(axis=0).tolist(),
                       "feature_std": np.maximum(raw.std(axis=0), 1e-6).tolist(),
                       "version": FORMAT_VERSION, "image_size": int(image_size), "nc": int(nc),
                       "num_classes": num_classes, "feature_dim": FEATURE_DIM, "epochs": epochs, "seed": seed,
                       "num_train": int(len(train_x)), "num_test": int(len(test_x)),
                       "test_accuracy": round(accuracy, 4), "seconds": round(seconds, 1)}
    log(f"quality classifier for {description}: trained {epochs} epochs on {len(train_x)} images in {seconds:.1f} s, "
        f"test accuracy {accuracy:.4f} on {len(test_x)} images")
    return classifier


def save(classifier, path_stem, log=print):
    """Write path_stem.ckpt and path_stem.json (each written to a temporary file, then renamed). Returns whether it
    could be written; a cache that cannot be written is a log line, not an error."""
    import mindspore as ms

    try:
        os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
        # By each parameter's place in the network: Parameter.name gains prefixes once the network is wrapped.
        params = [{"name": name, "data": param} for name, param in classifier.net.parameters_and_names()]
        ms.save_checkpoint(params, path_stem + ".tmp.ckpt")
        with open(path_stem + ".tmp.json", "w") as f:
            json.dump(classifier.info, f)
        os.replace(path_stem + ".tmp.ckpt", path_stem + ".ckpt")
        os.replace(path_stem + ".tmp.json", path_stem + ".json")
    except (OSError, RuntimeError, ValueError) as error:
        log(f"warning: could not cache the quality classifier at {path_stem}.ckpt ({error}); it is kept in memory "
            "only and will be retrained next time")
        return False
    log(f"quality classifier saved to {path_stem}.ckpt")
    return True


def load(path_stem, expected):
    """The cached Classifier at path_stem, or None when there is none or it does not match `expected` (a dict of
    info values that must be equal: version, image size, channels, data fingerprint...)."""
    import mindspore as ms

    try:
        with open(path_stem + ".json") as f:
            info = json.load(f)
        if not os.path.isfile(path_stem + ".ckpt"):
            return None
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or any(info.get(key) != value for key, value in expected.items()):
        return None
    try:
        net = build(info["image_size"], info["nc"], info["num_classes"])
        stored = ms.load_checkpoint(path_stem + ".ckpt")
        params = dict(net.parameters_and_names())
        if set(stored) != set(params):
            return None
        for name, param in params.items():
            param.set_data(stored[name])
    except (KeyError, TypeError, OSError, RuntimeError, ValueError):
        return None
    return Classifier(net, info)
