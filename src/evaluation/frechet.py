"""Fréchet distance between two sets of features (the distance FID computes on Inception features).

    d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

for the Gaussians fitted to each set. `frechet_distance(features_a, features_b)` takes any features: verify.py
passes discriminator features, the quality judge a classifier's or a user's feature network's (fid: e.g. an Inception
network exported to MINDIR or ONNX, see feature_model.py).
"""
import warnings

import numpy as np
from scipy import linalg

from src.errors import UserError

EPS = 1e-6  # added to both diagonals when S1 S2 is singular (fewer samples than dimensions)
IMAG_TOLERANCE = 1e-3  # on the diagonal: sqrtm of a near-singular product has round-off imaginary parts


def statistics(features):
    """(mean, covariance) of (N, D) features, N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise UserError(f"need at least 2 feature vectors of shape (N, D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2, eps=EPS):
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), numerically guarded."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise UserError(f"feature statistics do not match: means {mu1.shape} {mu2.shape}, "
                        f"covariances {sigma1.shape} {sigma2.shape}")
    for name, value in (("mean", mu1), ("mean", mu2), ("covariance", sigma1), ("covariance", sigma2)):
        if not np.isfinite(value).all():  # scipy's sqrtm does not return on a NaN matrix
            raise UserError(f"the feature {name} holds NaN or infinite values: features must be finite")
    product = sigma1 @ sigma2
    if not np.isfinite(product).all():
        raise UserError("the features are too large: their covariances overflow float64")
    diff = mu1 - mu2
    covmean, singular = _sqrtm(product)
    if singular:
        # Fewer samples than dimensions, or constant features: shift both covariances by eps * I, which makes the
        # product invertible and moves the distance by O(eps * D).
        offset = np.eye(len(mu1)) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # The product of two covariances has real non-negative eigenvalues; the square root of a (near-)singular
        # one picks up round-off imaginary parts. Drop them when they are tiny, refuse when they are not.
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > IMAG_TOLERANCE:
            raise ValueError(f"matrix square root has an imaginary component of {largest:.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(matrix):
    """(scipy's square root of matrix, whether it is unreliable: singular input or non-finite output)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        root = linalg.sqrtm(matrix)
    singular = False
    for w in caught:
        if issubclass(w.category, linalg.LinAlgWarning):
            singular = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return root, singular or not np.isfinite(root).all()


def frechet_distance(features_a, features_b, eps=EPS):
    """Squared Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance_from_statistics(*statistics(features_a), *statistics(features_b), eps=eps)
