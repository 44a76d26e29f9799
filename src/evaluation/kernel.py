"""Kernel distance (KID, Bińkowski et al., "Demystifying MMD GANs", ICLR 2018) between two sets of features.

The unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3          (d: feature dimension)

    MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)

averaged over SUBSETS random subsets of m = min(MAX_SUBSET, len(x), len(y)) features drawn from each set without
replacement. Unlike the Fréchet distance it has no bias from the sample size (its expectation is 0 for two samples
of one distribution, so small negative values occur), and it needs no covariance matrix, so it behaves with few
images. `KernelDistance(reference)` draws the reference subsets once and keeps their within-set term, so measuring
many generated sets against one reference repeats only the generated-set terms.
"""
import numpy as np

from src.errors import UserError

SUBSETS = 100
MAX_SUBSET = 1000


def polynomial_kernel(x, y):
    """k(x_i, y_j) for all pairs: (x y^T / d + 1)^3, cubed by multiplying (numpy's ** 3 is several times slower)."""
    k = x @ y.T
    k *= 1.0 / x.shape[1]
    k += 1.0
    cube = k * k
    cube *= k
    return cube


BLOCK = 1024  # rows of a kernel matrix computed at a time


def _indicators(count, m, subsets, rng):
    """(count, subsets) 0/1 matrix: column s marks the m members of subset s, drawn without replacement."""
    chosen = np.zeros((count, subsets))
    for s in range(subsets):
        chosen[rng.choice(count, m, replace=False), s] = 1.0
    return chosen


def _subset_sums(a, b, marks_a, marks_b):
    """For every subset s: the sum of k(a_i, b_j) over i in subset s of a and j in subset s of b, i.e. the
    diagonal of marks_a^T K(a, b) marks_b, without holding K(a, b) whole."""
    sums = np.zeros(marks_a.shape[1])
    for start in range(0, len(a), BLOCK):
        block = polynomial_kernel(a[start:start + BLOCK], b) @ marks_b  # (rows, subsets)
        sums += np.einsum("is,is->s", block, marks_a[start:start + BLOCK])
    return sums


def _within(x, marks, m):
    """For every subset s of x: the mean over i != j in s of k(x_i, x_j)."""
    diagonal = ((np.einsum("ij,ij->i", x, x) / x.shape[1] + 1.0) ** 3) @ marks
    return (_subset_sums(x, x, marks, marks) - diagonal) / (m * (m - 1))


class KernelDistance:
    """KID of feature sets (N, D) to one reference set (M, D), with seeded subsets: same inputs, same number."""

    def __init__(self, reference, seed=0, subsets=SUBSETS, max_subset=MAX_SUBSET):
        self.reference = np.asarray(reference, np.float64)
        if self.reference.ndim != 2 or len(self.reference) < 2:
            raise UserError(f"KID needs at least 2 reference feature vectors, got shape {self.reference.shape}")
        self.seed, self.subsets, self.max_subset = seed, subsets, max_subset
        self._cache = {}  # subset size -> (reference subset marks, their within-set terms)

    def _reference_subsets(self, m):
        if m not in self._cache:
            marks = _indicators(len(self.reference), m, self.subsets, np.random.default_rng([self.seed, m, 0]))
            self._cache[m] = (marks, _within(self.reference, marks, m))
        return self._cache[m]

    def __call__(self, features):
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.reference.shape[1] or len(features) < 2:
            raise UserError(f"KID needs at least 2 feature vectors of dimension {self.reference.shape[1]}, got "
                            f"shape {features.shape}")
        m = min(self.max_subset, len(features), len(self.reference))
        reference_marks, reference_terms = self._reference_subsets(m)
        marks = _indicators(len(features), m, self.subsets, np.random.default_rng([self.seed, m, 1]))
        cross = _subset_sums(features, self.reference, marks, reference_marks) / (m * m)
        return float(np.mean(_within(features, marks, m) + reference_terms - 2.0 * cross))


def kernel_distance(features_a, features_b, seed=0, subsets=SUBSETS, max_subset=MAX_SUBSET):
    """KID between two (N, D) feature sets (see the module docstring)."""
    return KernelDistance(features_b, seed, subsets, max_subset)(features_a)
