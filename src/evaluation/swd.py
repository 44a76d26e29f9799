"""Sliced Wasserstein distance between image sets on Laplacian-pyramid patches (Karras et al., "Progressive Growing
of GANs", ICLR 2018, section 5 and appendix D). Pure numpy/scipy: no network, any dataset, 1 or 3 channels.

For each set of images:
  pyramid      a Laplacian pyramid from the full resolution down to 16x16 (32 px: 32, 16; 64 px: 64, 32, 16): each
               level is the image minus the upsampled next level, the last level the 16x16 low-pass image
               (5x5 binomial filter [1 4 6 4 1]/16, mirrored edges, as cv2.pyrDown/pyrUp)
  descriptors  DESCRIPTORS_PER_IMAGE 7x7 neighbourhoods per image and level, at seeded random positions, each
               normalised per colour channel by the mean and standard deviation of all the set's descriptors of
               that level (each set by its own statistics, as the paper's code does), flattened to nc*49 values
  distance     per level: the descriptors of both sets projected onto DIRECTIONS random unit directions; the 1-D
               Wasserstein-1 distance of each projection is the mean absolute difference of the sorted values;
               averaged over the directions and multiplied by 1e3 (the paper's unit). The score is the average of
               the levels (the paper reports the levels and their average).

Departures from the paper's code, both for memory and speed at every training checkpoint:
  - at most MAX_DESCRIPTORS descriptors per set and level (fewer per image for sets of more than 2,048 images);
  - the sorted projections are compared at QUANTILES evenly spaced quantiles (the midpoints of QUANTILES equal
    slices of probability), so two sets of different sizes can be compared and the reference set is reduced once
    to a small table. With as many quantiles as descriptors this is exactly the paper's sorted difference.
Everything random (positions, directions) comes from `seed`: the same images and seed give the same number.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

NEIGHBOURHOOD = 7
DESCRIPTORS_PER_IMAGE = 128
SMALLEST_LEVEL = 16
DIRECTIONS = 512  # the paper's 4 repeats x 128 directions
DIRECTION_CHUNK = 128  # directions projected and sorted at a time (bounds the memory: chunk x descriptors floats)
MAX_DESCRIPTORS = 2 ** 18  # per set and level
QUANTILES = 8192
SORT_THREADS = min(2, os.cpu_count() or 1)
SCALE = 1e3
_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def num_levels(image_size):
    """Pyramid levels from image_size down to 16x16 (1 for images of 16 px or smaller)."""
    levels = 1
    while image_size // 2 ** levels >= SMALLEST_LEVEL:
        levels += 1
    return levels


def _blur(images, weights):
    out = ndimage.convolve1d(images, weights, axis=2, mode="mirror")
    return ndimage.convolve1d(out, weights, axis=3, mode="mirror")


def _down(images):
    return _blur(images, _BINOMIAL)[:, :, ::2, ::2]


def upsample(images):
    n, c, h, w = images.shape
    out = np.zeros((n, c, 2 * h, 2 * w), images.dtype)
    out[:, :, ::2, ::2] = images
    return _blur(out, _BINOMIAL * 2.0)  # x4 in all: 3 of every 4 pixels are the inserted zeros


def laplacian_pyramid(images, levels):
    """[level 0 (full size) ... level levels-1 (low-pass)] of float32 images (N, C, H, W)."""
    current = np.asarray(images, np.float32)
    pyramid = []
    for _ in range(levels - 1):
        smaller = _down(current)
        pyramid.append(current - upsample(smaller))
        current = smaller
    pyramid.append(current)
    return pyramid


def descriptors(level, per_image, rng):
    """(N * per_image, C * 49) float32: per_image 7x7 neighbourhoods of each image at random positions, normalised
    per channel by the mean and standard deviation over all of them."""
    n, c, h, w = level.shape
    half = NEIGHBOURHOOD // 2
    if h < NEIGHBOURHOOD or w < NEIGHBOURHOOD:
        raise ValueError(f"images of {h}x{w} are smaller than the {NEIGHBOURHOOD}x{NEIGHBOURHOOD} neighbourhood")
    count = n * per_image
    image = np.repeat(np.arange(n), per_image)[:, None, None, None]
    channel = np.arange(c)[None, :, None, None]
    offset = np.arange(-half, half + 1)
    y = rng.integers(half, h - half, size=count)[:, None, None, None] + offset[None, None, :, None]
    x = rng.integers(half, w - half, size=count)[:, None, None, None] + offset[None, None, None, :]
    patches = level[image, channel, y, x]  # (count, C, 7, 7)
    patches -= patches.mean(axis=(0, 2, 3), keepdims=True)
    patches /= np.maximum(patches.std(axis=(0, 2, 3), keepdims=True), 1e-8)  # a constant channel stays 0
    return patches.reshape(count, -1)


def _quantile_index(count, quantiles):
    """Positions in a sorted array of `count` values of the midpoints of `quantiles` equal slices."""
    return np.minimum(((np.arange(quantiles) + 0.5) * count / quantiles).astype(np.int64), count - 1)


def sorted_projections(desc, directions, quantiles=QUANTILES):
    """(num_directions, quantiles) float32: each projection of the descriptors, sorted, at the quantile grid.
    Chunks of directions are sorted in SORT_THREADS threads (numpy's sort releases the GIL)."""
    index = _quantile_index(len(desc), quantiles)
    table = np.empty((directions.shape[1], quantiles), np.float32)

    def chunk(start):
        block = directions[:, start:start + DIRECTION_CHUNK]
        projected = block.T @ desc.T  # (chunk, count), C-contiguous: each projection sorted along a row
        projected.sort(axis=1)
        table[start:start + block.shape[1]] = projected[:, index]

    starts = range(0, directions.shape[1], DIRECTION_CHUNK)
    if SORT_THREADS > 1 and len(starts) > 1:
        with ThreadPoolExecutor(SORT_THREADS) as pool:
            list(pool.map(chunk, starts))
    else:
        for start in starts:
            chunk(start)
    return table


class SlicedWasserstein:
    """The SWD of image sets to one reference set, whose per-level quantile tables are computed once here.

    SlicedWasserstein(reference_images, seed)(images) -> {"swd": average of the levels, "swd_levels": [per level,
    full resolution first]}, all x1e3. Images float32 (N, C, H, W), any range (the descriptors are normalised)."""

    def __init__(self, reference, seed=0, quantiles=QUANTILES):
        reference = np.asarray(reference, np.float32)
        if reference.ndim != 4 or len(reference) < 1:
            raise ValueError(f"reference images must be (N, C, H, W), got shape {reference.shape}")
        self.shape = reference.shape[1:]
        self.seed, self.quantiles = seed, quantiles
        self.levels = num_levels(min(self.shape[1:]))
        dims = self.shape[0] * NEIGHBOURHOOD * NEIGHBOURHOOD
        directions = np.random.default_rng([seed, 0]).standard_normal((self.levels, dims, DIRECTIONS))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self.directions = directions.astype(np.float32)
        self.num_reference = len(reference)
        self.tables = self._tables(reference, role=0)

    def _tables(self, images, role):
        """Quantile tables per level; role 0 (reference) and 1 (compared sets) draw different positions."""
        per_image = max(1, min(DESCRIPTORS_PER_IMAGE, MAX_DESCRIPTORS // len(images)))
        tables = []
        for i, level in enumerate(laplacian_pyramid(images, self.levels)):
            desc = descriptors(level, per_image, np.random.default_rng([self.seed, 1 + role, i]))
            tables.append(sorted_projections(desc, self.directions[i], self.quantiles))
        return tables

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        if images.shape[1:] != self.shape:
            raise ValueError(f"images of shape {images.shape[1:]} cannot be compared with reference images of "
                             f"shape {self.shape}")
        per_level = [float(np.mean(np.abs(mine - ref))) * SCALE
                     for mine, ref in zip(self._tables(images, role=1), self.tables)]
        return {"swd": float(np.mean(per_level)), "swd_levels": per_level}
