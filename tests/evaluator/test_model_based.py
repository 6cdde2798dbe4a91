"""The learned driving model and its rollouts against exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from roadworthy.evaluator.bootstrap import episode_bootstrap
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_based import DrivingModel, ModelConfig
from roadworthy.evaluator.model_rollout import RolloutSettings, simulate
from roadworthy.evaluator.world import World


def linear_log(n_episodes=150, horizon=20, seed=0, a_mat=None, b_mat=None, noise=0.02) -> EvalData:
    """s' = A s + B a + noise, a ~ N(0, 1); reward = s_0 (the first feature)."""
    rng = np.random.default_rng(seed)
    a_mat = np.array([[0.9, 0.1], [0.0, 0.8]]) if a_mat is None else a_mat
    b_mat = np.array([[0.5], [-0.3]]) if b_mat is None else b_mat
    obs, act, nxt = [], [], []
    for i in range(n_episodes):
        # The first episode starts at (1, 0): the closed-form tests start there.
        s = np.array([1.0, 0.0]) if i == 0 else rng.normal(size=2)
        for _ in range(horizon):
            a = rng.normal(size=1)
            s2 = a_mat @ s + b_mat @ a + noise * rng.normal(size=2)
            obs.append(s)
            act.append(a)
            nxt.append(s2)
            s = s2
    obs, act, nxt = (np.asarray(x, dtype=np.float32) for x in (obs, act, nxt))
    n = len(obs)
    step = np.tile(np.arange(horizon), n_episodes)
    to_go = horizon - step
    return EvalData(
        obs=obs,
        next_obs=nxt,
        action=act,
        reward=obs[:, 0].astype(np.float64),
        costs=np.zeros((n, 0)),
        cost_names=[],
        cont=(to_go > 1).astype(np.float32),
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
        behavior_logp=np.full(n, np.nan),
        horizon=horizon,
        reward_range=(-10.0, 10.0),
        obs_names=("s0", "s1"),
        action_names=("a",),
        action_low=np.array([-5.0]),
        action_high=np.array([5.0]),
    )


FAST = ModelConfig(heads=3, components=3, hidden=(64, 64), steps=1500, batch_size=256)


@pytest.fixture(scope="module", params=["autoregressive", "mixture"])
def fitted(request):
    data = linear_log()
    cfg = ModelConfig(**{**FAST.__dict__, "dynamics": request.param})
    w = episode_bootstrap(np.random.default_rng(0), cfg.heads, data.n_episodes)
    return data, DrivingModel.fit(data, cfg, w, seed=0, learned=[])


def test_the_model_recovers_a_known_linear_system(fitted):
    _, model = fitted
    rng = np.random.default_rng(5)
    s = rng.normal(size=(400, 2)) * 0.8
    a = rng.normal(size=(400, 1)) * 0.8
    draws = []
    for k in range(20):
        r = np.random.default_rng(k)
        e, m = model.heads, len(s)
        nxt, *_ = model.step(
            np.broadcast_to(s, (e, m, 2)).copy(),
            np.broadcast_to(a, (e, m, 1)).copy(),
            r.uniform(size=(e, m, 2)),
            r.standard_normal((e, m, 2)),
        )
        draws.append(nxt)
    mean = np.mean(draws, axis=0)  # (E, M, 2)
    truth = s @ np.array([[0.9, 0.1], [0.0, 0.8]]).T + a @ np.array([[0.5], [-0.3]]).T
    err = np.abs(mean - truth[None])
    assert err.mean() < 0.05, err.mean()
    # The sampled spread matches the system's noise (0.02), not the data's spread.
    assert np.std(np.asarray(draws)[:, 0] - mean[0], axis=0).mean() < 0.06


def test_rollout_of_a_policy_matches_the_closed_form_value(fitted):
    """Policy a = 0 from s0 = (1, 0): s_t = A^t s0, value = sum_t gamma^t s_t[0]."""
    data, model = fitted
    a_mat = np.array([[0.9, 0.1], [0.0, 0.8]])
    gamma, horizon = 0.95, 20
    s, truth = np.array([1.0, 0.0]), 0.0
    for t in range(horizon):
        truth += gamma**t * s[0]
        s = a_mat @ s
    res = simulate(
        World(model, data),
        lambda obs, t: np.zeros((len(obs), 1)),
        np.array([0]),
        np.array([horizon]),
        gamma=gamma,
        reward_range=data.reward_range,
        shortfall=lambda o, a: (np.zeros(len(o)), np.zeros(len(o))),
        settings=RolloutSettings(particles=4),
        seed=0,
    )
    assert res.mid[:, 0, 0].mean() == pytest.approx(truth, rel=0.08)
    # Fully supported: the bounds are the estimate.
    np.testing.assert_allclose(res.lo, res.mid)
    np.testing.assert_allclose(res.hi, res.mid)


def test_pessimism_grows_with_how_far_and_how_often_decisions_leave_the_support(fitted):
    data, model = fitted

    def run(z):
        return simulate(
            World(model, data),
            lambda obs, t: np.zeros((len(obs), 1)),
            np.array([0]),
            np.array([20]),
            gamma=0.95,
            reward_range=data.reward_range,
            shortfall=lambda o, a: (np.full(len(o), z), np.zeros(len(o))),
            settings=RolloutSettings(particles=1),
            seed=0,
        )

    inside, near, far = run(0.0), run(0.1), run(5.0)
    assert inside.lo[..., 0].mean() > near.lo[..., 0].mean() > far.lo[..., 0].mean()
    assert far.lo[..., 0].mean() < data.reward_range[0] * 0.5  # a near-certain failure: the worst step
    assert inside.hi[..., 0].mean() < near.hi[..., 0].mean() < far.hi[..., 0].mean()
    assert near.mid[..., 0].mean() < inside.mid[..., 0].mean()


def _entry(name: str, res, confidence: float = 0.95) -> dict:
    """A report entry from a simulation (one start, so the head's figure is its value)."""
    from roadworthy.evaluator.policy_entry import HeadFigures, figures_block, heads_dict

    fig = HeadFigures(res.mid[:, 0, :], res.lo[:, 0, :], res.hi[:, 0, :], "model", {})
    value, costs = figures_block(fig, [], confidence)
    return {
        "name": name,
        "value": value,
        "costs": costs,
        "coverage": 1.0,
        "coverage_by": {},
        "heads": heads_dict(fig.mid, fig.lo, fig.hi, []),
    }


def test_aa_gate_on_identical_policies_passes_and_a_worse_one_fails(fitted):
    """A/A: the same policy as candidate and baseline, every head on the same model and random
    numbers, gives a paired difference of exactly 0. Braking (a = -1) lowers the closed-form
    value far beyond the 10 % margin, and the gate's mean difference matches that exact figure."""
    from roadworthy.evaluator.gate import verdict
    from roadworthy.evaluator.gate_config import GateConfig

    data, model = fitted
    a_mat, b_mat = np.array([[0.9, 0.1], [0.0, 0.8]]), np.array([0.5, -0.3])

    def closed_form(a: float) -> float:
        s, v = np.array([1.0, 0.0]), 0.0
        for t in range(20):
            v += 0.95**t * s[0]
            s = a_mat @ s + b_mat * a
        return v

    def run(a: float):
        return simulate(
            World(model, data),
            lambda obs, t: np.full((len(obs), 1), a),
            np.array([0]),
            np.array([20]),
            gamma=0.95,
            reward_range=data.reward_range,
            shortfall=lambda o, x: (np.zeros(len(o)), np.zeros(len(o))),
            settings=RolloutSettings(particles=4),
            seed=0,
        )

    report = {
        "logs": "linear",
        "rows": data.n,
        "episodes": data.n_episodes,
        "policies": [_entry("base", run(0.0)), _entry("same", run(0.0)), _entry("brake", run(-1.0))],
    }
    aa = verdict(report, "same", "base", GateConfig())
    assert aa["passed"], aa["failed_checks"]
    value = next(c for c in aa["checks"] if c["id"] == "value_non_inferiority")
    assert value["mean_difference"] == 0.0 and value["observed"] == 0.0
    worse = verdict(report, "brake", "base", GateConfig())
    assert worse["failed_checks"] == ["value_non_inferiority"]
    value = next(c for c in worse["checks"] if c["id"] == "value_non_inferiority")
    exact = closed_form(-1.0) - closed_form(0.0)
    assert value["mean_difference"] == pytest.approx(exact, rel=0.1)
