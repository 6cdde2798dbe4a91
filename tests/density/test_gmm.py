"""Joint Gaussian mixture with analytic conditioning, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from roadworthy.density.gmm import GaussianMixtureDensity


def test_one_component_conditional_is_the_gaussian_formula():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, 0.5], [0.2, 0.5, 1.5]])
    x = rng.multivariate_normal([0.5, -1.0, 2.0], cov, size=40_000)
    m = GaussianMixtureDensity(n_condition=2, n_components=1, reg_covar=1e-9).fit(x)
    mu, S = x.mean(0), np.cov(x.T, bias=True)
    q = rng.multivariate_normal([0.5, -1.0, 2.0], cov, size=200)
    s11, s12, s22 = S[:2, :2], S[:2, 2:], S[2:, 2:]
    cm = mu[2] + (q[:, :2] - mu[:2]) @ np.linalg.solve(s11, s12).ravel()
    cv = float((s22 - s12.T @ np.linalg.solve(s11, s12))[0, 0])
    expect = norm.logpdf(q[:, 2], cm, np.sqrt(cv))
    np.testing.assert_allclose(m.score_samples(q), expect, atol=1e-4)


def test_unconditional_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]])
    m = GaussianMixtureDensity(n_condition=0, n_components=1, reg_covar=1e-9).fit(x)
    ref = multivariate_normal(x.mean(0), np.cov(x.T, bias=True))
    np.testing.assert_allclose(m.score_samples(x[:50]), ref.logpdf(x[:50]), atol=1e-4)


def test_conditional_integrates_to_one():
    rng = np.random.default_rng(2)
    s = rng.normal(size=8000)
    a = np.where(s > 0, s, -s) + 0.3 * rng.normal(size=s.size)
    m = GaussianMixtureDensity(n_condition=1, n_components=6).fit(np.stack([s, a], 1))
    grid = np.linspace(-8, 10, 4001)
    for sv in (-1.0, 0.3):
        lp = m.score_samples(np.stack([np.full_like(grid, sv), grid], 1))
        assert np.trapezoid(np.exp(lp), grid) == pytest.approx(1.0, abs=1e-3)
