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

import numpy as np
import torch

from evaluator.fqe_torch import HI, LO, MID, EnsembleMLP, predict, train_fqe
from evaluator.logdata import EvalData


@dataclass(frozen=True)
class FQEConfig:
    """Settings of Fitted Q Evaluation.

    Parameters
    ----------
    heads : int
        Bootstrap heads (>= 2).
    hidden : tuple of int
    iterations : int
        Fitted Q iterations (target-network updates); values propagate one step per
        iteration, so 0 (the default) means the log's horizon plus 20.
    steps_per_iteration : int
        Gradient steps between target updates.
    batch_size : int
    learning_rate : float
    max_rows : int
        Training rows (whole episodes are subsampled, seeded, above this).
    pessimism : {"terminal", "horizon"}
        Value backed up through an out-of-support decision (see the module docstring).
    failure_prob : float
        For the plain estimate: the assumed chance that an out-of-support decision
        ends in the worst outcome (0.5: no information either way).
    """

    heads: int = 5
    hidden: tuple[int, ...] = (64, 64)
    iterations: int = 0
    steps_per_iteration: int = 80
    batch_size: int = 512
    learning_rate: float = 1e-3
    max_rows: int = 300_000
    pessimism: str = "terminal"
    failure_prob: float = 0.5


def logged_view(data: EvalData) -> PolicyView:
    """The logged behaviour as a policy view: its own next action at every row, never gated.

    Fitted Q evaluation of this view is SARSA: it estimates the behaviour's own value,
    which the logged returns show, so it can be checked on held-out episodes.
    """
    acts = data.action.astype(np.float64)[:, None, :]
    return PolicyView(acts, np.zeros((data.n, 1), dtype=bool), acts)


@dataclass
class PolicyView:
    """What a policy does on the logged states (computed once per policy).

    Attributes
    ----------
    actions : (N, K, A) the policy's action(s) at each logged state s_t
    gate : (N, K) bool, those actions are outside the trusted support
    trusted : (N, K, A) the actions at which Q is evaluated: the policy's own where
        the logs cover them well, else pulled back toward the logged action just far
        enough to be covered (Q cannot be trusted further out; see
        :func:`evaluator.evaluate.policy_view`)
    """

    actions: np.ndarray
    gate: np.ndarray
    trusted: np.ndarray


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


def _inputs(obs, act, to_go, horizon, scaler) -> torch.Tensor:
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


def episode_bootstrap(rng: np.random.Generator, heads: int, n_episodes: int) -> np.ndarray:
    """Poisson(1) weights of each episode in each bootstrap head, shape (heads, n_episodes).

    Drawn first from a fresh generator of the evaluation's seed, so every policy and the
    logged behaviour share the same resamples: comparisons between them are paired.
    """
    return rng.poisson(1.0, size=(heads, n_episodes)).astype(np.float64)


def fit_fqe(
    data: EvalData,
    view: PolicyView,
    config: FQEConfig,
    *,
    gamma: float,
    seed: int,
    device: str = "cpu",
    on_iteration=None,
) -> FQEResult:
    """Fit FQE for one policy and return start-state values per head and channel."""
    if config.heads < 2:
        raise ValueError("FQE needs at least 2 heads for its statistical interval")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n, k = view.gate.shape
    e = config.heads
    ep_w = episode_bootstrap(rng, e, data.n_episodes)

    # Training rows: whole episodes, subsampled above max_rows.
    rows = np.arange(n)
    if n > config.max_rows:
        keep_eps = rng.permutation(data.n_episodes)
        counts = np.bincount(data.episode, minlength=data.n_episodes)
        chosen = keep_eps[np.cumsum(counts[keep_eps]) <= config.max_rows]
        rows = np.flatnonzero(np.isin(data.episode, chosen))

    # Next-state policy actions and gates come from the following logged row
    # (same episode); where the log stopped early, from the row itself.
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    same = np.r_[data.episode[1:] == data.episode[:-1], False]
    nxt = np.where(same, nxt, np.arange(n))

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
    x = _inputs(data.obs[rows], data.action[rows], data.to_go[rows], data.horizon, scaler)
    nxt_rows = nxt[rows]
    a_next = view.trusted[nxt_rows]  # (R, K, A)
    x_next = _inputs(
        np.repeat(data.next_obs[rows], k, axis=0),
        a_next.reshape(-1, a_next.shape[-1]),
        np.repeat(data.next_to_go[rows], k),
        data.horizon,
        scaler,
    )
    gate = torch.as_tensor(view.gate[nxt_rows])
    lo_v, hi_v = pessimistic_values(data, data.next_to_go[rows], gamma, config.pessimism)
    reward = np.hstack([data.reward[rows, None], data.costs[rows]])
    bounds = value_bounds(data, data.to_go[rows], gamma)
    fail = np.hstack([lo_v[:, :1], hi_v[:, 1:]])
    every = np.hstack([data.reward[:, None], data.costs])
    channel_scale = torch.as_tensor(
        np.maximum(np.maximum(np.abs(every.mean(axis=0)), every.std(axis=0)), 1e-4), dtype=torch.float32
    )
    net = EnsembleMLP(
        e, x.shape[1] - data.action.shape[1], data.action.shape[1], tuple(config.hidden), reward.shape[1], seed
    )
    losses = train_fqe(
        net,
        x=x,
        scale=step_scale(data.to_go[rows], gamma),
        scale_next=step_scale(np.repeat(data.next_to_go[rows], k), gamma),
        channel_scale=channel_scale,
        reward=torch.as_tensor(reward, dtype=torch.float32),
        cont=torch.as_tensor(data.cont[rows]),
        x_next=x_next,
        next_k=k,
        gate=gate,
        pess_lo=torch.as_tensor(lo_v, dtype=torch.float32),
        pess_hi=torch.as_tensor(hi_v, dtype=torch.float32),
        fail=torch.as_tensor(fail, dtype=torch.float32),
        fail_prob=config.failure_prob,
        weights=torch.as_tensor(ep_w[:, data.episode[rows]], dtype=torch.float32),
        bounds=torch.as_tensor(bounds, dtype=torch.float32),
        gamma=gamma,
        iterations=config.iterations or data.horizon + 20,
        steps_per_iteration=config.steps_per_iteration,
        batch_size=config.batch_size,
        lr=config.learning_rate,
        seed=seed,
        on_iteration=on_iteration,
    )

    # Start-state values: V(s0) = mean over pi's actions, gated for the bounds.
    s0 = data.starts
    q0 = predict(
        net,
        _inputs(
            np.repeat(data.obs[s0], k, axis=0),
            view.trusted[s0].reshape(-1, view.trusted.shape[-1]),
            np.repeat(data.to_go[s0], k),
            data.horizon,
            scaler,
        ),
        step_scale(np.repeat(data.to_go[s0], k), gamma),
        channel_scale,
    ).reshape(e, len(s0), k, -1, 3)
    lo0, hi0 = pessimistic_values(data, data.to_go[s0], gamma, config.pessimism)
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

    # Plain Q of the logged actions and V of the logged states (for doubly robust).
    q_logged = predict(
        net,
        _inputs(data.obs, data.action, data.to_go, data.horizon, scaler),
        step_scale(data.to_go, gamma),
        channel_scale,
    )[..., MID].mean(0)
    qv = predict(
        net,
        _inputs(
            np.repeat(data.obs, k, axis=0),
            view.trusted.reshape(-1, view.trusted.shape[-1]),
            np.repeat(data.to_go, k),
            data.horizon,
            scaler,
        ),
        step_scale(np.repeat(data.to_go, k), gamma),
        channel_scale,
    )[..., MID]
    v_state = qv.reshape(e, n, k, -1).mean(2).mean(0)
    return FQEResult(mid, lo, hi, losses, ep_w, q_logged, v_state, v_mid)
