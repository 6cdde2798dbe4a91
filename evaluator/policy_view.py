"""A policy's decisions on the logged states, gated by the behaviour density.

For each logged row: the policy's mean action (and log-std), its sampled actions
(one for a deterministic policy, ``next_samples`` for a Gaussian one), whether each
leaves the trusted support (conformal p-value <= the support level), and the action
at which the Q-function is evaluated (pulled back toward the logged action until it
is well covered). Row-wise and batch-independent: the Gaussian noise of row
(episode, step) comes from a counter-based generator keyed by (seed, episode id,
step), so the local and the Ray engine, whatever their batches, give the same view.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.evaluator.logdata import EvalData

if TYPE_CHECKING:
    from collections.abc import Sequence

    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.density.behavior import BehaviorModel


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
        :func:`roadworthy.evaluator.evaluate.policy_view`)
    """

    actions: np.ndarray
    gate: np.ndarray
    trusted: np.ndarray


def logged_view(data: EvalData) -> PolicyView:
    """The logged behaviour as a policy view: its own next action at every row, never gated.

    Fitted Q evaluation of this view is SARSA: it estimates the behaviour's own value,
    which the logged returns show, so it can be checked on held-out episodes.
    """
    acts = data.action.astype(np.float64)[:, None, :]
    return PolicyView(acts, np.zeros((data.n, 1), dtype=bool), acts)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (uint64 in, uint64 out; wraps on overflow by design)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def episode_keys(episode_ids: Sequence[object]) -> np.ndarray:
    """A stable 64-bit key per episode id (CRC-32 of its UTF-8 text)."""
    return np.asarray([zlib.crc32(str(e).encode()) for e in episode_ids], dtype=np.uint64)


def row_normals(seed: int, keys: np.ndarray, steps: np.ndarray, k: int, a: int) -> np.ndarray:
    """Standard normal draws (N, k, a), a pure function of (seed, episode key, step, sample, entry)."""
    n = len(keys)
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLDEN + keys.astype(np.uint64) * _M1 + steps.astype(np.uint64) * _M2)
        lane = np.arange(k * a, dtype=np.uint64).reshape(1, k, a)
        z = base.reshape(n, 1, 1) + (lane + np.uint64(1)) * _GOLDEN
        u1 = (_mix(z) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        u2 = (_mix(z ^ _M2) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def support_level(model: BehaviorModel, alpha: float) -> float:
    """The support level actually used: ``alpha``, or 1 / (n + 1) when a calibration
    set of n rows cannot resolve ``alpha`` (no p-value falls below 1 / (n + 1); the
    gate then catches decisions beyond every calibration row)."""
    n = model.action_cal_.counts.get("all", 0)
    return max(alpha, 1.0 / (n + 1))


def view_arrays(
    obs: np.ndarray,
    logged_action: np.ndarray,
    keys: np.ndarray,
    steps: np.ndarray,
    policy: OnnxPolicy,
    model: BehaviorModel,
    *,
    action_low: np.ndarray,
    action_high: np.ndarray,
    support_alpha: float,
    trust_alpha: float,
    next_samples: int,
    seed: int,
    chunk: int = 65_536,
) -> dict[str, np.ndarray]:
    """The policy view of a batch of rows (any batch: the result is row-wise).

    Returns
    -------
    dict
        ``acts`` (N, K, A), ``gate`` (N, K) bool (outside the support), ``trusted``
        (N, K, A), ``mean`` (N, A), ``log_std`` (N, A) or absent when deterministic,
        ``out_of_bounds`` (N, K) bool: the policy's mean action lies outside the log's
        declared action bounds. Such a decision is clipped to the bounds, as the car
        would clip it, and the clipped action is what the support gate judges; the count
        is reported per policy (``out_of_bounds`` in the report), never silently dropped.
        Saturating controllers ask past a bound in an emergency (the simulator's IDM
        drivers in about 2 % of states), so asking is not by itself out of the support.
    """
    means, logstds = [], []
    for i in range(0, len(obs), chunk):
        m, ls = policy.distribution(obs[i : i + chunk])
        means.append(m)
        logstds.append(ls)
    mean = np.concatenate(means).astype(np.float64) if means else np.zeros((0, logged_action.shape[1]))
    log_std = None if not logstds or logstds[0] is None else np.concatenate(logstds).astype(np.float64)
    n, a = mean.shape
    k = next_samples if log_std is not None else 1
    if log_std is None:
        acts = mean[:, None, :]
    else:
        acts = mean[:, None, :] + np.exp(log_std)[:, None, :] * row_normals(seed, keys, steps, k, a)
    # The policy's intent (its mean action) outside the bounds is what counts: a Gaussian
    # policy's samples reach past any bound now and then, and the car clips them.
    oob = np.broadcast_to(((mean < action_low) | (mean > action_high)).any(axis=1)[:, None], (n, k)).copy()
    acts = np.clip(acts, action_low, action_high)
    gate = np.zeros((n, k), dtype=bool)
    trusted = np.empty_like(acts)
    ref = logged_action.astype(np.float64)
    alpha = support_level(model, support_alpha)
    for j in range(k):
        p = model.action_pvalues(obs, acts[:, j, :])
        gate[:, j] = p <= alpha
        # Pull each poorly covered action back toward the logged one, in quarters,
        # keeping the first that is well covered (the logged action itself is data).
        best = np.where(p > trust_alpha, 1.0, 0.0)
        for lam in (0.75, 0.5, 0.25):
            todo = best == 0.0
            if not todo.any():
                break
            cand = ref[todo] + lam * (acts[todo, j, :] - ref[todo])
            ok = model.action_pvalues(obs[todo], cand) > trust_alpha
            best[np.flatnonzero(todo)[ok]] = lam
        trusted[:, j, :] = ref + best[:, None] * (acts[:, j, :] - ref)
    out = {"acts": acts, "gate": gate, "trusted": trusted, "mean": mean, "out_of_bounds": oob}
    if log_std is not None:
        out["log_std"] = log_std
    return out


def behavior_logp_arrays(obs: np.ndarray, action: np.ndarray, logged: np.ndarray, model: BehaviorModel) -> np.ndarray:
    """log mu(a | s) of logged actions: the logged ``behavior_logp`` where known, else the model's."""
    out = np.empty(len(obs))
    for i in range(0, len(obs), 65536):
        sl = slice(i, i + 65536)
        out[sl] = model.action_logp(obs[sl], action[sl])
    known = np.isfinite(logged)
    out[known] = logged[known]
    return out


def to_policy_view(arrays: dict[str, np.ndarray]) -> tuple[PolicyView, np.ndarray, np.ndarray | None]:
    """(:class:`PolicyView`, mean, log_std) from :func:`view_arrays`' output."""
    return PolicyView(arrays["acts"], arrays["gate"], arrays["trusted"]), arrays["mean"], arrays.get("log_std")
