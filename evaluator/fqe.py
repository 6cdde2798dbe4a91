"""Fitted Q Evaluation with density-gated pessimism and bootstrapped heads.

For a policy pi, each head learns Q(s, a, steps to go) per channel (reward, then
each cost) by fitted Q iterations on the logged transitions:

    y = r + gamma * cont * V(s'),   V(s') = mean over pi's action(s) a' at s' of Q(s', a')

with three versions of V(s'):

* **plain** (the estimate): Q(s', a') for every a';
* **lower**: where the behaviour density flags a' as out of the trusted support,
  the data cannot tell what follows, so the lower bound backs up the worst value the
  reward range allows there instead of Q's guess;
* **upper**: likewise with the best value.

[lower, upper] is thus a partial-identification interval: it contains the value
whatever happens after out-of-support decisions, under the assumptions that (1) the
density model's support is right where it says an action is in support, (2) Q is
well estimated there, and (3) per-step rewards (costs) stay within their range. Its
width shows how much the answer depends on what the logs cannot tell. The default
pessimistic value treats an out-of-support decision as an immediate absorbing worst
step (``pessimism="terminal"``: the worst one-step reward, then nothing); the
stricter ``"horizon"`` assumes the worst reward at every remaining step.

Heads are trained on Poisson(1) bootstrap resamples of episodes; their spread gives
the statistical part of the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from roadworthy.evaluator.bootstrap import episode_bootstrap
from roadworthy.evaluator.fqe_torch import (
    HI,
    LO,
    MID,
    EnsembleMLP,
    FQEProblem,
    FQESchedule,
    predict,
    resolve_device,
    train_fqe,
)
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.policy_view import PolicyView
from roadworthy.evaluator.settings import FQEConfig

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class FQEResult:
    """Per-head start-state values, per channel: arrays (E, C) for mid, lo, hi."""

    mid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    losses: list[float]
    head_weights: np.ndarray  # (E, n_episodes) bootstrap weights
    q_logged: np.ndarray  # (N, C) plain Q of the logged (s, a), mean over heads
    v_state: np.ndarray  # (N, C) plain V(s_t) under the policy, mean over heads
    start_mid: np.ndarray | None = None  # (E, S, C) plain value of each logged start, per head
    #: Per-head Q of any (state, action, steps to go) rows: ``q(obs, act, to_go)`` -> (E, N, C, 3).
    q: _QReader | None = None


def pessimistic_values(data: EvalData, to_go: np.ndarray, gamma: float, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Values (N, C) backed up through a gated decision: lower and upper, per channel."""
    r_lo, r_hi = data.reward_range
    k = np.maximum(to_go, 1).astype(np.float64)
    span = (1 - gamma**k) / (1 - gamma) if gamma < 1 else k
    c = data.costs.shape[1]
    lo = np.zeros((len(k), 1 + c))
    hi = np.zeros((len(k), 1 + c))
    cost_max = np.maximum(data.costs.max(axis=0), 1.0) if c else np.zeros(0)
    if mode == "horizon":
        lo[:, 0] = r_lo * span
        hi[:, 1:] = cost_max[None, :] * span[:, None]
    else:  # "terminal": the decision ends the episode at once with the worst step
        lo[:, 0] = r_lo
        hi[:, 1:] = cost_max[None, :]
    hi[:, 0] = r_hi * span
    return lo, hi


#: Standardized inputs are clipped here: an action far outside the logged range
#: (a 0.25 rad swerve is 50 logged standard deviations) would otherwise drive the
#: network's linear extrapolation, and the fitted iterations, off to infinity.
INPUT_CLIP = 6.0


def _inputs(
    obs: np.ndarray, act: np.ndarray, to_go: np.ndarray, horizon: int, scaler: tuple[np.ndarray, np.ndarray]
) -> torch.Tensor:
    x = np.hstack([obs, (to_go / horizon)[:, None], act]).astype(np.float64)
    z = np.clip((x - scaler[0]) / scaler[1], -INPUT_CLIP, INPUT_CLIP)
    return torch.as_tensor(z.astype(np.float32))


def step_scale(to_go: np.ndarray, gamma: float) -> torch.Tensor:
    """sum_{j < k} gamma^j for k steps to go (at least one)."""
    k = np.maximum(to_go, 1).astype(np.float64)
    span = (1 - gamma**k) / (1 - gamma) if gamma < 1 else k
    return torch.as_tensor(span.astype(np.float32))


def value_bounds(data: EvalData, to_go: np.ndarray, gamma: float) -> np.ndarray:
    """(N, C, 2): the least and the most any policy can collect from each row on."""
    r_lo, r_hi = data.reward_range
    k = np.maximum(to_go, 1).astype(np.float64)
    span = (1 - gamma**k) / (1 - gamma) if gamma < 1 else k
    c = data.costs.shape[1]
    out = np.zeros((len(k), 1 + c, 2))
    out[:, 0, 0], out[:, 0, 1] = r_lo * span, r_hi * span
    if c:
        cost_max = np.maximum(data.costs.max(axis=0), 1.0)
        out[:, 1:, 1] = cost_max[None, :] * span[:, None]
    return out


def fit_fqe(
    data: EvalData,
    view: PolicyView,
    config: FQEConfig,
    *,
    gamma: float,
    seed: int,
    device: str = "cpu",
    weights: np.ndarray | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
) -> FQEResult:
    """Fit FQE for one policy and return start-state values per head and channel.

    ``weights`` (heads, episodes): the run's bootstrap resamples
    (:class:`roadworthy.evaluator.headline.Headline` draws them once); drawn from ``seed``
    when None.

    ``device`` is where the Q-networks train (``"cpu"``, or ``"cuda"`` where torch sees
    a GPU); an unknown or unavailable device is an error, never a silent fallback.
    """
    if config.heads < 2:
        raise ValueError("FQE needs at least 2 heads for its statistical interval")
    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    if weights is None:
        ep_w = episode_bootstrap(rng, config.heads, data.n_episodes)
    else:
        ep_w = np.asarray(weights, dtype=np.float64)
        # The training rows are drawn after the resamples from the same stream, as when FQE
        # draws them itself: skip that draw so that both give the same rows.
        rng.poisson(1.0, size=ep_w.shape)
    rows = _training_rows(data, config.max_rows, rng)
    scaler = _input_scaler(data)
    problem = build_problem(data, view, config, gamma, rows, ep_w, scaler)
    net = EnsembleMLP(
        config.heads,
        problem.x.shape[1] - data.action.shape[1],
        data.action.shape[1],
        tuple(config.hidden),
        problem.reward.shape[1],
        seed,
    ).to(dev)
    schedule = FQESchedule(
        gamma=gamma,
        fail_prob=config.failure_prob,
        iterations=config.iterations or data.horizon + 20,
        steps_per_iteration=config.steps_per_iteration,
        batch_size=config.batch_size,
        lr=config.learning_rate,
        seed=seed,
    )
    losses = train_fqe(net, problem.to(dev), schedule, on_iteration=on_iteration)
    q = _QReader(net, data, scaler, problem.channel_scale, gamma)
    mid, lo, hi, v_mid = _start_values(q, data, view, config, ep_w)
    # Plain Q of the logged actions and V of the logged states (for doubly robust).
    q_logged = q(data.obs, data.action, data.to_go)[..., MID].mean(0)
    n, k = view.gate.shape
    qv = q(np.repeat(data.obs, k, axis=0), view.trusted.reshape(-1, view.trusted.shape[-1]), np.repeat(data.to_go, k))[
        ..., MID
    ]
    v_state = qv.reshape(config.heads, n, k, -1).mean(2).mean(0)
    return FQEResult(mid, lo, hi, losses, ep_w, q_logged, v_state, v_mid, q)


def _training_rows(data: EvalData, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Training rows: whole episodes, subsampled above ``max_rows``."""
    if data.n <= max_rows:
        return np.arange(data.n)
    keep_eps = rng.permutation(data.n_episodes)
    counts = np.bincount(data.episode, minlength=data.n_episodes)
    chosen = keep_eps[np.cumsum(counts[keep_eps]) <= max_rows]
    return np.flatnonzero(np.isin(data.episode, chosen))


def _input_scaler(data: EvalData) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of the network inputs (state, time to go, action)."""
    x_all = np.hstack([data.obs, (data.to_go / data.horizon)[:, None], data.action]).astype(np.float64)
    scaler = (x_all.mean(axis=0), x_all.std(axis=0) + 1e-6)
    d = data.obs.shape[1]
    scaler[1][d] = max(scaler[1][d], 1e-3)
    # Actions are scaled by half their physical range, not by their logged spread: a
    # policy's small departures from the logged actions (a steering angle two logged
    # standard deviations off) should look small to the Q-network, as they are for
    # the car.
    a = slice(d + 1, d + 1 + data.action.shape[1])
    scaler[0][a] = (data.action_high + data.action_low) / 2
    scaler[1][a] = (data.action_high - data.action_low) / 2
    return scaler


def build_problem(
    data: EvalData,
    view: PolicyView,
    config: FQEConfig,
    gamma: float,
    rows: np.ndarray,
    ep_w: np.ndarray,
    scaler: tuple[np.ndarray, np.ndarray],
) -> FQEProblem:
    """The tensors of the fitted Q iterations for one policy (see :class:`FQEProblem`)."""
    n, k = view.gate.shape
    # Next-state policy actions and gates come from the following logged row
    # (same episode); where the log stopped early, from the row itself.
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    same = np.r_[data.episode[1:] == data.episode[:-1], False]
    nxt = np.where(same, nxt, np.arange(n))[rows]
    a_next = view.trusted[nxt]  # (R, K, A)
    lo_v, hi_v = pessimistic_values(data, data.next_to_go[rows], gamma, config.pessimism)
    every = np.hstack([data.reward[:, None], data.costs])

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    return FQEProblem(
        x=_inputs(data.obs[rows], data.action[rows], data.to_go[rows], data.horizon, scaler),
        scale=step_scale(data.to_go[rows], gamma),
        channel_scale=f32(np.maximum(np.maximum(np.abs(every.mean(axis=0)), every.std(axis=0)), 1e-4)),
        reward=f32(np.hstack([data.reward[rows, None], data.costs[rows]])),
        cont=torch.as_tensor(data.cont[rows]),
        x_next=_inputs(
            np.repeat(data.next_obs[rows], k, axis=0),
            a_next.reshape(-1, a_next.shape[-1]),
            np.repeat(data.next_to_go[rows], k),
            data.horizon,
            scaler,
        ),
        scale_next=step_scale(np.repeat(data.next_to_go[rows], k), gamma),
        next_k=k,
        gate=torch.as_tensor(view.gate[nxt]),
        pess_lo=f32(lo_v),
        pess_hi=f32(hi_v),
        fail=f32(np.hstack([lo_v[:, :1], hi_v[:, 1:]])),
        weights=f32(ep_w[:, data.episode[rows]]),
        bounds=f32(value_bounds(data, data.to_go[rows], gamma)),
    )


class _QReader:
    """Q values (E, N, C, 3) of (state, action, steps to go) rows from a trained network."""

    def __init__(
        self,
        net: EnsembleMLP,
        data: EvalData,
        scaler: tuple[np.ndarray, np.ndarray],
        channel_scale: torch.Tensor,
        gamma: float,
    ) -> None:
        self.net, self.data, self.scaler, self.cs, self.gamma = net, data, scaler, channel_scale, gamma

    def __call__(self, obs: np.ndarray, action: np.ndarray, to_go: np.ndarray) -> np.ndarray:
        x = _inputs(obs, action, to_go, self.data.horizon, self.scaler)
        return predict(self.net, x, step_scale(to_go, self.gamma), self.cs)


def _start_values(
    q: _QReader, data: EvalData, view: PolicyView, config: FQEConfig, ep_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start-state values per head and channel: V(s0), the mean over pi's actions, gated for the bounds."""
    e, k = config.heads, view.gate.shape[1]
    s0 = data.starts
    q0 = q(
        np.repeat(data.obs[s0], k, axis=0),
        view.trusted[s0].reshape(-1, view.trusted.shape[-1]),
        np.repeat(data.to_go[s0], k),
    ).reshape(e, len(s0), k, -1, 3)
    lo0, hi0 = pessimistic_values(data, data.to_go[s0], q.gamma, config.pessimism)
    g0 = view.gate[s0][None, :, :, None]
    fail0 = np.hstack([lo0[:, :1], hi0[:, 1:]])[None, :, None, :]
    v_mid = (q0[..., MID] + g0 * config.failure_prob * (fail0 - q0[..., MID])).mean(2)
    v_lo = np.where(g0, lo0[None, :, None, :], q0[..., LO]).mean(2)
    v_hi = np.where(g0, hi0[None, :, None, :], q0[..., HI]).mean(2)
    w0 = ep_w[:, data.episode[s0]]  # (E, S)
    norm = w0.sum(axis=1, keepdims=True)
    mid = (w0[:, :, None] * v_mid).sum(1) / norm
    # The three outputs are fitted separately; the true bounds satisfy lo <= mid <= hi.
    lo = np.minimum((w0[:, :, None] * v_lo).sum(1) / norm, mid)
    hi = np.maximum((w0[:, :, None] * v_hi).sum(1) / norm, mid)
    return mid, lo, hi, v_mid
