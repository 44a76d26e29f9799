"""The memorisation check (the paper's section 4.1): are generated images copies of training images?

For every generated image, its K nearest training images by two distances:
  pixel     L2 distance between the images as [-1, 1] float vectors (C*H*W dims)
  feature   L2 distance between D features (src/representation.FeatureExtractor: every D stage max-pooled to
            4x4, concatenated), which see past small shifts that pixel distance punishes
and, as the reference, the same nearest-neighbour distances of real test images (which the training never saw) to
the training set: a generator that memorises has generated->train distances far below test->train ones; one that
generalises has them about as large. A generated image whose nearest training image differs from it by at most one
8-bit grey level in every pixel (COPY_TOLERANCE) is reported as a copy.

The training set is streamed in batches, never held whole: memory is bounded by the queries (generated + test
images), one training batch, their distance matrix and the K kept neighbours per query,
  O((Q + B) * (P + F) + Q * B + Q * K * P) floats
for Q queries, batch size B, P pixel and F feature dims, whatever the size of the training set (64 generated + 64
test images of 64 px RGB, B = 256, K = 5: about 100 MB).

Outputs (eval.py --nearest K): nearest.png (each generated sample, then its K nearest training images by pixel
distance, then by D-feature distance) and nearest.json (the distances' distributions and the copies).
"""
import json
import os
import pathlib

import numpy as np

from src.analysis import figures
from src.errors import UserError
from src.files import write_atomically

NEAREST_FIGURE = "nearest.png"
NEAREST_JSON = "nearest.json"
COPY_TOLERANCE = 1.0 / 127.5  # one 8-bit grey level on the [-1, 1] scale
FIGURE_ROWS = 16  # generated samples shown in nearest.png
PERCENTILES = (0, 1, 5, 25, 50, 75, 95)


class NearestSearch:
    """Running K-nearest-neighbour search of fixed query vectors over a stream of reference batches.

    add(batch, offset) takes a (B, D) batch whose first row is reference number `offset`; distances are ranked by
    the expansion |q|^2 + |r|^2 - 2 q.r in float64 and the kept candidates' distances recomputed from the
    differences, so an exact copy has distance exactly 0. `exclude` (Q,): a reference index each query must not
    match (a query that is itself a training image: leave-one-out), -1 for none."""

    def __init__(self, queries, k, exclude=None):
        self.queries = np.asarray(queries, np.float32).reshape(len(queries), -1)
        self.k = k
        self.exclude = None if exclude is None else np.asarray(exclude, np.int64)
        self.q_norms = np.einsum("ij,ij->i", self.queries.astype(np.float64), self.queries.astype(np.float64))
        self.distances = np.full((len(self.queries), 0), np.inf, np.float64)
        self.indices = np.zeros((len(self.queries), 0), np.int64)

    def add(self, batch, offset):
        batch = np.asarray(batch, np.float32).reshape(len(batch), -1)
        if batch.shape[1] != self.queries.shape[1]:
            raise UserError(f"training images have {batch.shape[1]} values each, generated ones "
                            f"{self.queries.shape[1]}: the dataset's image size or channels differ from the "
                            "generator's")
        wide = batch.astype(np.float64)
        squared = self.q_norms[:, None] + np.einsum("ij,ij->i", wide, wide)[None] \
            - 2.0 * self.queries.astype(np.float64) @ wide.T
        if self.exclude is not None:
            rows = np.flatnonzero((self.exclude >= offset) & (self.exclude < offset + len(batch)))
            squared[rows, self.exclude[rows] - offset] = np.inf
        take = min(self.k, len(batch))
        candidates = np.argpartition(squared, take - 1, axis=1)[:, :take]  # (Q, take) rows of this batch
        difference = (self.queries[:, None, :] - batch[candidates]).astype(np.float64)  # (Q, take, D)
        exact = np.sqrt(np.einsum("qkd,qkd->qk", difference, difference))
        exact[~np.isfinite(np.take_along_axis(squared, candidates, axis=1))] = np.inf  # excluded, never kept
        distances = np.concatenate([self.distances, exact], axis=1)
        indices = np.concatenate([self.indices, candidates + offset], axis=1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :self.k]
        self.distances = np.take_along_axis(distances, order, axis=1)
        self.indices = np.take_along_axis(indices, order, axis=1)
        return candidates  # callers that keep the neighbours' images pick them from the batch with these


def search(generated, test, train_batches, k, featurize=None, total=None, progress=None, test_indices=None):
    """Nearest training images of `generated` (N, C, H, W) and, as the reference, of `test` (M, C, H, W).
    test_indices: when the reference images are training images themselves (a dataset without a test split),
    their indices in the training stream; each is then searched among the other training images.

    train_batches: an iterable of (B, C, H, W) float arrays in [-1, 1], the training set in a fixed order (read
    once); featurize: images -> (B, F) D features, or None for pixel distance only; progress(seen, total) is
    called after every batch. Returns {"pixel": {...}, "feature": {...}} with, per distance, "generated" and
    "test": (distances (Q, K), indices (Q, K)), plus "neighbours": the generated images' K nearest training
    images by each distance (N, K, C, H, W) and "num_train"."""
    generated = np.asarray(generated, np.float32)
    test = np.asarray(test, np.float32)
    if k < 1:
        raise UserError(f"--nearest must be at least 1 (neighbours per generated image), not {k}")
    queries = np.concatenate([generated, test])
    kinds = ["pixel"] + (["feature"] if featurize is not None else [])
    exclude = None
    if test_indices is not None:
        exclude = np.concatenate([np.full(len(generated), -1), np.asarray(test_indices, np.int64)])
    searches = {"pixel": NearestSearch(queries, k, exclude)}
    if featurize is not None:
        searches["feature"] = NearestSearch(np.asarray(featurize(queries)), k, exclude)
    n = len(generated)
    kept = {kind: np.zeros((n, 0) + generated.shape[1:], np.float32) for kind in kinds}
    seen = 0
    for batch in train_batches:
        batch = np.asarray(batch, np.float32)
        if batch.shape[1:] != generated.shape[1:]:
            raise UserError(f"training images are {tuple(batch.shape[1:])} (C, H, W), generated ones "
                            f"{tuple(generated.shape[1:])}: use the dataset and image size the generator was "
                            "trained on")
        vectors = {"pixel": batch}
        if featurize is not None:
            vectors["feature"] = np.asarray(featurize(batch))
        for kind in kinds:
            before = searches[kind].indices[:n].copy()
            candidates = searches[kind].add(vectors[kind], seen)
            # The generated queries' kept neighbour images: the old ones and this batch's candidates, re-ranked.
            pool = np.concatenate([kept[kind], batch[candidates[:n]]], axis=1)
            pool_index = np.concatenate([before, candidates[:n] + seen], axis=1)
            now = searches[kind].indices[:n]
            position = np.argmax(pool_index[:, None, :] == now[:, :, None], axis=2)  # (n, K) into the pool
            kept[kind] = np.take_along_axis(pool, position[:, :, None, None, None], axis=1)
        seen += len(batch)
        if progress is not None:
            progress(seen, total)
    if seen == 0:
        raise UserError("the training set has no images")
    out = {"num_train": seen, "neighbours": kept}
    for kind in kinds:
        s = searches[kind]
        out[kind] = {"generated": (s.distances[:n], s.indices[:n]), "test": (s.distances[n:], s.indices[n:])}
    return out


def _distribution(values):
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return None
    summary = {"mean": float(f"{values.mean():.5g}")}
    summary.update({f"p{p}": float(f"{np.percentile(values, p):.5g}") for p in PERCENTILES})
    return summary


def copies(generated, neighbours):
    """Indices of the generated images (N, C, H, W) whose nearest training image (neighbours[:, 0]) differs by at
    most COPY_TOLERANCE in every pixel."""
    if neighbours.shape[1] == 0:
        return []
    worst = np.abs(np.asarray(generated, np.float32) - neighbours[:, 0]).reshape(len(generated), -1).max(axis=1)
    return [int(i) for i in np.flatnonzero(worst <= COPY_TOLERANCE + 1e-7)]


def summarise(found, generated):
    """The nearest.json content (without the run's provenance, which the caller adds)."""
    report = {"num_generated": int(len(generated)), "num_train": int(found["num_train"]),
              "k": int(found["pixel"]["generated"][0].shape[1]), "copy_tolerance": COPY_TOLERANCE,
              "distances": {}}
    for kind in ("pixel", "feature"):
        if kind not in found:
            continue
        gen_d, gen_i = found[kind]["generated"]
        test_d, _ = found[kind]["test"]
        gen_nn, test_nn = gen_d[:, 0], test_d[:, 0]
        entry = {"generated_to_train": _distribution(gen_nn), "test_to_train": _distribution(test_nn),
                 "nearest": [{"sample": i, "train_index": int(gen_i[i, 0]), "distance": float(f"{gen_nn[i]:.6g}")}
                             for i in range(len(gen_nn))]}
        if len(test_nn):
            # The memorisation signal: generated images closer to the training set than almost any real image.
            threshold = float(np.percentile(test_nn, 1))
            entry["generated_below_test_p1"] = float(f"{np.mean(gen_nn < threshold):.4g}")
            entry["median_ratio_generated_to_test"] = float(f"{np.median(gen_nn) / max(np.median(test_nn), 1e-12):.4g}")
        report["distances"][kind] = entry
    report["distances"]["pixel"]["definition"] = "L2 distance of the [-1, 1] pixel vectors"
    if "feature" in report["distances"]:
        report["distances"]["feature"]["definition"] = ("L2 distance of D features (every stage max-pooled to "
                                                        "4x4, concatenated)")
    report["copies"] = copies(generated, found["neighbours"]["pixel"])
    return report


def nearest_figure(generated, found, rows=FIGURE_ROWS):
    """Each of the first `rows` generated images, then its K nearest training images by pixel distance, then by
    D-feature distance (when searched); the pixel distance under each neighbour."""
    kinds = [kind for kind in ("pixel", "feature") if kind in found]
    k = found["pixel"]["generated"][0].shape[1]
    copy_set = set(copies(generated, found["neighbours"]["pixel"]))
    width = k * (figures.TILE + figures.GAP) - figures.GAP
    header = [figures.label("generated", figures.TILE, 18, size=11)]
    for kind in kinds:
        name = "pixel L2" if kind == "pixel" else "D features"
        text = f"nearest training images, {name}" if width >= 200 else f"nearest, {name}" if width >= 120 else name
        header += [figures.gap(10, 18), figures.label(text, width, 18, size=11)]
    out_rows = [header]
    for i in range(min(rows, len(generated))):
        cells = [figures.tile(generated[i])]
        for kind in kinds:
            cells.append(figures.gap(10))
            distances = found[kind]["generated"][0][i]
            for j, image in enumerate(found["neighbours"][kind][i]):
                cells.append(_with_caption(figures.tile(image), f"{distances[j]:.2f}" if kind == "pixel"
                                           else f"{distances[j]:.3g}"))
        if i in copy_set:
            cells.append(figures.label("COPY", size=12))
        out_rows.append(cells)
    return figures.compose(out_rows, spacing=2)


def _with_caption(tile, text):
    from PIL import Image

    caption = figures.label(text, tile.width, 12, size=10)
    cell = Image.new("RGB", (tile.width, tile.height + caption.height), figures.BACKGROUND)
    cell.paste(tile, (0, 0))
    cell.paste(caption, (0, tile.height))
    return cell


def write(generated, found, output_path, provenance=None):
    """nearest.png and nearest.json in `output_path`. Returns ([paths], report)."""
    report = dict(provenance or {}, **summarise(found, generated))
    figure = figures.save(nearest_figure(generated, found), os.path.join(output_path, NEAREST_FIGURE))
    text = json.dumps(report, indent=1) + "\n"
    path = write_atomically(os.path.join(output_path, NEAREST_JSON), lambda tmp: pathlib.Path(tmp).write_text(text))
    return [figure, path], report
