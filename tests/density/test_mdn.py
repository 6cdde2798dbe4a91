"""The mixture density network: a proper density that recovers known conditionals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roadworthy.density.mdn import MDN
from roadworthy.density.mdn_torch import MixtureNet, mixture_log_prob


@pytest.fixture(scope="module")
def gaussian_conditional():
    rng = np.random.default_rng(0)
    s = rng.normal(size=20_000)
    a = 2 * s + 1 + 0.5 * rng.normal(size=s.size)
    model = MDN(n_condition=1, epochs=25, random_state=0).fit(np.stack([s, a], 1))
    return model


def test_recovers_a_known_gaussian_conditional(gaussian_conditional):
    rng = np.random.default_rng(1)
    s = rng.normal(size=3000)
    a = 2 * s + 1 + 0.5 * rng.normal(size=s.size)
    true = -0.5 * ((a - 2 * s - 1) / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)
    got = gaussian_conditional.score_samples(np.stack([s, a], 1))
    assert np.mean(np.abs(got - true)) < 0.06
    w, mean, _std = gaussian_conditional.mixture([[0.5]])
    assert float((w[0] * mean[0, :, 0]).sum()) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("s", [-1.5, 0.0, 2.0])
def test_conditional_density_integrates_to_one(gaussian_conditional, s):
    grid = np.linspace(-12, 16, 6001)
    lp = gaussian_conditional.score_samples(np.stack([np.full_like(grid, s), grid], 1))
    assert np.trapezoid(np.exp(lp), grid) == pytest.approx(1.0, abs=2e-3)


def test_unconditional_2d_density_integrates_to_one():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal([-2, 0], [0.5, 1.0], (4000, 2)), rng.normal([2, 1], [1.0, 0.4], (4000, 2))])
    m = MDN(n_condition=0, n_components=4, epochs=40, random_state=0).fit(x)
    g = np.linspace(-7, 7, 281)
    xx, yy = np.meshgrid(g, g)
    p = np.exp(m.score_samples(np.stack([xx.ravel(), yy.ravel()], 1))).reshape(xx.shape)
    assert np.trapezoid(np.trapezoid(p, g, axis=1), g) == pytest.approx(1.0, abs=0.01)


def test_gradients_reach_every_parameter():
    net = MixtureNet(3, 2, 4, (8, 8), float(np.log(0.02)), float(np.log(5.0)))
    s, a = torch.randn(16, 3), torch.randn(16, 2)
    (-mixture_log_prob(*net(s), a).mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_point_masses_keep_finite_densities():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(3000, 2))
    a = np.where(s[:, :1] > 0, 0.0, rng.uniform(0, 1, (3000, 1)))  # a throttle held at exactly 0
    m = MDN(n_condition=2, epochs=10, random_state=0).fit(np.hstack([s, a]))
    lp = m.score_samples(np.hstack([s, a]))
    assert np.isfinite(lp).all() and lp.max() < 10


def test_cuda_where_there_is_none_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        MDN(n_condition=1, device="cuda").fit(np.random.default_rng(0).normal(size=(50, 2)))


def test_sampling_matches_the_density(gaussian_conditional):
    draws = gaussian_conditional.sample(np.full((20000, 1), 1.0), np.random.default_rng(0))
    assert draws.mean() == pytest.approx(3.0, abs=0.05) and draws.std() == pytest.approx(0.5, abs=0.05)
