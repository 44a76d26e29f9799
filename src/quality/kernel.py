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
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _within(x):
    """mean over i != j of k(x_i, x_j)."""
    k = polynomial_kernel(x, x)
    m = len(x)
    return (k.sum() - np.trace(k)) / (m * (m - 1))


class KernelDistance:
    """KID of feature sets (N, D) to one reference set (M, D), with seeded subsets: same inputs, same number."""

    def __init__(self, reference, seed=0, subsets=SUBSETS, max_subset=MAX_SUBSET):
        self.reference = np.asarray(reference, np.float64)
        if self.reference.ndim != 2 or len(self.reference) < 2:
            raise UserError(f"KID needs at least 2 reference feature vectors, got shape {self.reference.shape}")
        self.seed, self.subsets, self.max_subset = seed, subsets, max_subset
        self._cache = {}  # subset size -> (reference subset indices, their within-set terms)

    def _reference_subsets(self, m):
        if m not in self._cache:
            rng = np.random.default_rng([self.seed, m, 0])
            chosen = [rng.choice(len(self.reference), m, replace=False) for _ in range(self.subsets)]
            self._cache[m] = (chosen, [_within(self.reference[c]) for c in chosen])
        return self._cache[m]

    def __call__(self, features):
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.reference.shape[1] or len(features) < 2:
            raise UserError(f"KID needs at least 2 feature vectors of dimension {self.reference.shape[1]}, got "
                            f"shape {features.shape}")
        m = min(self.max_subset, len(features), len(self.reference))
        chosen, reference_terms = self._reference_subsets(m)
        rng = np.random.default_rng([self.seed, m, 1])
        values = []
        for ref_index, ref_term in zip(chosen, reference_terms):
            x = features[rng.choice(len(features), m, replace=False)]
            values.append(_within(x) + ref_term - 2.0 * polynomial_kernel(x, self.reference[ref_index]).mean())
        return float(np.mean(values))


def kernel_distance(features_a, features_b, seed=0, subsets=SUBSETS, max_subset=MAX_SUBSET):
    """KID between two (N, D) feature sets (see the module docstring)."""
    return KernelDistance(features_b, seed, subsets, max_subset)(features_a)
