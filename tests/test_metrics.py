"""src/evaluation/frechet.py: the Fréchet distance against its closed form for Gaussians, and its numerical guards."""
import numpy as np
import pytest

from src.errors import UserError
from src.evaluation.frechet import frechet_distance, frechet_distance_from_statistics, statistics


def random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def test_matches_closed_form_for_gaussians_with_commuting_covariances():
    """S1 = R D1 R', S2 = R D2 R': d^2 = |mu1 - mu2|^2 + sum_i (sqrt(d1_i) - sqrt(d2_i))^2."""
    rng = np.random.default_rng(0)
    dim = 6
    rotation = random_rotation(dim, rng)
    d1, d2 = rng.uniform(0.5, 3.0, dim), rng.uniform(0.1, 2.0, dim)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    sigma1, sigma2 = rotation @ np.diag(d1) @ rotation.T, rotation @ np.diag(d2) @ rotation.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_matches_closed_form_in_one_dimension():
    """N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2."""
    assert frechet_distance_from_statistics([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_sample_estimate_approaches_the_closed_form():
    """Features drawn from two known Gaussians (non-commuting covariances): the estimate from 200,000 samples is
    within 2% of the exact distance computed from the true statistics."""
    rng = np.random.default_rng(1)
    a1, a2 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    sigma1, sigma2 = a1 @ a1.T + np.eye(3), a2 @ a2.T + 0.5 * np.eye(3)
    mu1, mu2 = np.zeros(3), np.array([1.0, -1.0, 0.5])
    exact = frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2)
    x = rng.multivariate_normal(mu1, sigma1, 200_000)
    y = rng.multivariate_normal(mu2, sigma2, 200_000)
    assert frechet_distance(x, y) == pytest.approx(exact, rel=0.02)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_singular_covariances_are_guarded_and_stay_close_to_the_closed_form():
    """diag(1, 0) vs diag(0, 1): S1 S2 = 0 is singular; with eps on the diagonals the result is finite, real and
    within O(sqrt(eps)) of the exact 2."""
    result = frechet_distance_from_statistics(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), np.diag([0.0, 1.0]))
    assert np.isfinite(result) and isinstance(result, float)
    assert result == pytest.approx(2.0, abs=0.01)


def test_fewer_samples_than_dimensions_gives_a_finite_distance():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 64))
    b = rng.standard_normal((20, 64)) + 1.0
    distance = frechet_distance(a, b)
    assert np.isfinite(distance) and distance > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-2)


def test_statistics_and_mismatched_inputs():
    mean, cov = statistics(np.array([[0.0, 1.0], [2.0, 3.0]]))
    np.testing.assert_allclose(mean, [1.0, 2.0])
    np.testing.assert_allclose(cov, [[2.0, 2.0], [2.0, 2.0]])
    with pytest.raises(UserError, match="at least 2 feature vectors"):
        statistics(np.zeros((1, 3)))
    with pytest.raises(UserError, match="do not match"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
