"""Estimators against exact answers: IS on a bandit, FQE on a chain, pessimism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roadworthy.evaluator.fqe import FQEConfig, fit_fqe
from roadworthy.evaluator.importance import estimates, policy_logp
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.policy_view import PolicyView


def _norm_logpdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def test_importance_sampling_is_unbiased_on_a_bandit():
    """One-step episodes, logged Gaussian propensities, a Gaussian target policy:
    E_pi[-(a - 1)^2] = -(Var a + 1) = -1.5 exactly."""
    rng = np.random.default_rng(0)
    n = 200_000
    s = rng.normal(size=n)
    a = s + rng.normal(size=n)  # behaviour N(s, 1)
    r = -((a - 1.0) ** 2)
    log_mu = _norm_logpdf(a, s, 1.0)
    log_pi = policy_logp(a[:, None], 0.5 * s[:, None], np.full((n, 1), np.log(0.5)), np.ones(1))
    out = estimates(
        reward=r, log_rho=log_pi - log_mu, episode=np.arange(n), step=np.zeros(n, int), gamma=0.99, clip=1e9
    )
    w = np.exp(log_pi - log_mu)
    se = (w * r).std() / np.sqrt(n)
    assert abs(out["pdis"] - (-1.5)) < 4 * se
    assert abs(out["wis"] - (-1.5)) < 0.05
    assert out["ess"] > 0.1 * n


def chain(n_episodes=300, horizon=20, seed=0) -> EvalData:
    """s = t / horizon, a ~ U(-1, 1), r = a; episodes end at the horizon."""
    rng = np.random.default_rng(seed)
    n = n_episodes * horizon
    step = np.tile(np.arange(horizon), n_episodes)
    obs = (step / horizon).astype(np.float32)[:, None]
    act = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    to_go = horizon - step
    cont = (to_go > 1).astype(np.float32)
    nxt = np.r_[obs[1:], obs[-1:]]
    return EvalData(
        obs=obs,
        next_obs=nxt,
        action=act,
        reward=act[:, 0].astype(np.float64),
        costs=np.zeros((n, 0)),
        cost_names=[],
        cont=cont,
        terminal=np.zeros(n, dtype=bool),
        has_next=to_go > 1,
        episode=np.repeat(np.arange(n_episodes), horizon),
        episode_ids=[str(i) for i in range(n_episodes)],
        starts=np.flatnonzero(step == 0),
        step=step,
        to_go=to_go,
        next_to_go=np.maximum(to_go - 1, 0),
        source=np.full(n, "autopilot", object),
        scenario=np.full(n, "x", object),
        map_name=np.full(n, "m", object),
        x=np.full(n, np.nan),
        y=np.full(n, np.nan),
        behavior_logp=np.full(n, np.log(0.5)),
        horizon=horizon,
        reward_range=(-1.0, 1.0),
        obs_names=("s",),
        action_names=("a",),
        action_low=np.array([-1.0]),
        action_high=np.array([1.0]),
    )


def view(data: EvalData, action: float, gate_share: float = 0.0, seed: int = 0) -> PolicyView:
    acts = np.full((data.n, 1, 1), action)
    gate = np.random.default_rng(seed).uniform(size=(data.n, 1)) < gate_share
    return PolicyView(acts, gate, acts.copy())


FAST = FQEConfig(heads=3, hidden=(32, 32), iterations=40, steps_per_iteration=30, batch_size=256)


@pytest.fixture(scope="module")
def chain_data():
    return chain()


def test_fqe_matches_the_closed_form_value_of_a_chain(chain_data):
    gamma = 0.9
    truth = 0.5 * (1 - gamma**20) / (1 - gamma)
    res = fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=gamma, seed=0)
    assert res.mid[:, 0].mean() == pytest.approx(truth, rel=0.05)


def test_pessimism_leaves_fully_supported_policies_unchanged(chain_data):
    res = fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=1)
    np.testing.assert_array_equal(res.lo, res.mid)
    np.testing.assert_array_equal(res.hi, res.mid)


def test_pessimism_lowers_the_bound_when_decisions_leave_the_support(chain_data):
    res = fit_fqe(chain_data, view(chain_data, 0.5, gate_share=0.2), FAST, gamma=0.9, seed=1)
    assert (res.lo[:, 0] < res.mid[:, 0] - 0.5).all()
    assert (res.hi[:, 0] > res.mid[:, 0] + 0.5).all()
    plain = fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=1)
    # With failures assumed half the time after a gated decision, the estimate drops too.
    assert res.mid[:, 0].mean() < plain.mid[:, 0].mean()


def test_fqe_refuses_a_device_it_cannot_use(chain_data):
    with pytest.raises(ValueError, match="unknown device"):
        fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=0, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=0, device="cuda")
    cpu = fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=0, device="cpu")
    again = fit_fqe(chain_data, view(chain_data, 0.5), FAST, gamma=0.9, seed=0)
    np.testing.assert_array_equal(cpu.mid, again.mid)
