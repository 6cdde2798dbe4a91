"""Importance-sampling cross-checks: per-decision IS, weighted IS, doubly robust.

Per-row ratios rho_t = pi(a_t | s_t) / mu(a_t | s_t) of the logged actions:

* mu, the behaviour density, is the logged ``behavior_logp`` where the logger knew
  it, and otherwise the behaviour model's p(a | s) (:mod:`roadworthy.density`);
* pi is the policy's own density for a Gaussian policy; a deterministic policy has
  none, so it is smoothed with a Gaussian kernel of width ``bandwidth`` x the
  logged action's standard deviation, per action entry.

Cumulative weights w_t = prod_{u <= t} rho_u are clipped at ``clip`` (in log space).
Over long episodes they degenerate; the effective sample size of the final weights
is reported so a reader can tell when these figures mean little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class ISConfig:
    """Settings of the importance-sampling estimators.

    Parameters
    ----------
    bandwidth : float
        Kernel width for deterministic policies, in logged-action standard deviations.
    clip : float
        Largest cumulative weight.
    bootstrap : int
        Episode resamples for the intervals.
    """

    bandwidth: float = 0.3
    clip: float = 100.0
    bootstrap: int = 200


def policy_logp(
    actions: np.ndarray, mean: np.ndarray, log_std: np.ndarray | None, kernel_std: np.ndarray
) -> np.ndarray:
    """log pi(a | s) per row: the Gaussian policy's, or the kernel-smoothed deterministic one's."""
    std = np.exp(log_std) if log_std is not None else np.broadcast_to(kernel_std, mean.shape)
    z = (actions - mean) / std
    return (-0.5 * z * z - np.log(std) - 0.5 * LOG_2PI).sum(axis=1)


def estimates(
    *,
    reward: np.ndarray,
    log_rho: np.ndarray,
    episode: np.ndarray,
    step: np.ndarray,
    gamma: float,
    clip: float,
    q_logged: np.ndarray | None = None,
    v_state: np.ndarray | None = None,
    episode_weights: np.ndarray | None = None,
) -> dict[str, float]:
    """PDIS, WIS and DR point estimates for one reward (or cost) channel.

    Parameters
    ----------
    reward : (N,) per-row reward of the channel
    log_rho : (N,) log importance ratio of each logged action
    episode : (N,) episode index (rows grouped and sorted by step within episodes)
    step : (N,) step within the episode
    q_logged, v_state : (N,) FQE's Q(s_t, a_t) and V(s_t), for doubly robust
    episode_weights : (n_episodes,) resampling weights (bootstrap), default 1
    """
    n_ep = int(episode.max()) + 1
    ew = np.ones(n_ep) if episode_weights is None else episode_weights
    # Cumulative log-weights within each episode (rows are sorted by step per episode).
    starts = np.r_[0, np.flatnonzero(np.diff(episode)) + 1]
    cum = np.cumsum(log_rho)
    offset = np.repeat(cum[starts] - log_rho[starts], np.diff(np.r_[starts, len(episode)]))
    logw = np.minimum(cum - offset, np.log(clip))
    w = np.exp(logw)
    disc = gamma ** step.astype(np.float64)
    row_w = ew[episode]
    total = ew.sum()
    if total <= 0:  # a bootstrap draw that kept no episode
        return {"pdis": np.nan, "wis": np.nan, "dr": np.nan, "ess": 0.0, "ess_share": 0.0}
    pdis = float((row_w * disc * w * reward).sum() / total)
    # Weighted per-decision IS: normalize the weights at each step across episodes.
    steps = step.astype(np.int64)
    num = np.bincount(steps, weights=row_w * w * reward)
    den = np.bincount(steps, weights=row_w * w)
    alive = np.bincount(steps, weights=row_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_step = np.where(den > 0, num / den, 0.0) * (alive / total)
    wis = float((per_step * gamma ** np.arange(len(per_step))).sum())
    out = {"pdis": pdis, "wis": wis}
    if q_logged is not None and v_state is not None:
        w_prev = np.where(np.r_[True, episode[1:] != episode[:-1]], 1.0, np.r_[1.0, w[:-1]])
        dr_terms = disc * (w * (reward - q_logged) + w_prev * v_state)
        out["dr"] = float((row_w * dr_terms).sum() / total)
    last = np.r_[starts[1:] - 1, len(episode) - 1]
    final = w[last] * ew
    out["ess"] = float(final.sum() ** 2 / max((final**2).sum(), 1e-300))
    out["ess_share"] = out["ess"] / max(total, 1e-12)
    return out


def with_intervals(
    fn: Callable[[np.ndarray], dict[str, float]], n_episodes: int, resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, dict]:
    """Point estimates of ``fn(episode_weights)`` and percentile bootstrap intervals."""
    point = fn(None)
    rng = np.random.default_rng(seed)
    draws = [fn(rng.poisson(1.0, n_episodes).astype(np.float64)) for _ in range(resamples)]
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    out = {}
    for key in ("pdis", "wis", "dr"):
        if key not in point:
            continue
        vals = np.array([d[key] for d in draws])
        vals = vals[np.isfinite(vals)]
        out[key] = {
            "estimate": point[key],
            "lower": float(np.quantile(vals, lo_q)) if len(vals) else float("nan"),
            "upper": float(np.quantile(vals, hi_q)) if len(vals) else float("nan"),
            "confidence": confidence,
        }
    out["diagnostics"] = {"ess": point["ess"], "ess_share": point["ess_share"]}
    return out
