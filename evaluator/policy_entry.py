"""One policy's entry of an evaluation report, from per-head figures.

Whichever estimator gave them (the learned model or fitted Q evaluation), the
figures arrive per bootstrap head, (heads, 1 + C) for the estimate, the lower and the
upper bound (value first, then each cost channel). The reported interval of each is
its mean over heads -/+ a Student-t margin of their spread,

    t_{0.5 + confidence / 2, B - 1} * sd * sqrt(1 + 1 / B)

(:func:`interval_multiplier`; the sqrt(1 + 1/B) term accounts for the heads' mean
itself being estimated from B heads). Importance sampling runs beside as a
cross-check, per behaviour source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from roadworthy.evaluator.importance import ISConfig, estimates, policy_logp, with_intervals
from roadworthy.evaluator.logdata import EvalData


def interval_multiplier(confidence: float, heads: int, sided: str = "two") -> float:
    """Half-width of a B-head interval in head standard deviations: t * sqrt(1 + 1 / B).

    ``sided="two"``: t_{0.5 + confidence / 2, B - 1}, for intervals; ``"one"``:
    t_{confidence, B - 1}, for one-sided bounds (the gate's non-inferiority tests).
    """
    q = 0.5 + confidence / 2 if sided == "two" else confidence
    return float(stats.t.ppf(q, heads - 1)) * float(np.sqrt(1 + 1 / heads))


@dataclass
class HeadFigures:
    """Per-head figures of one policy: (heads, 1 + C) each, and what made them."""

    mid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    estimator: str
    diagnostics: dict
    q_logged: np.ndarray | None = None
    v_state: np.ndarray | None = None
    #: ``v_state`` holds costs over the next few seconds (model), not to the horizon (FQE).
    cell_horizon_s: bool = False


def heads_dict(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray, cost_names: Sequence[str]) -> dict:
    """The report's ``heads`` block (per-head lists, for paired comparisons)."""

    def one(j: int) -> dict:
        return {"estimate": mid[:, j].tolist(), "lower": lo[:, j].tolist(), "upper": hi[:, j].tolist()}

    return {"value": one(0), "costs": {name: one(j) for j, name in enumerate(cost_names, start=1)}}


def figures_block(fig: HeadFigures, cost_names: Sequence[str], confidence: float) -> tuple[dict, dict]:
    """``value`` and ``costs`` of the report entry."""
    t = interval_multiplier(confidence, fig.mid.shape[0])

    def summary(x: np.ndarray) -> tuple[float, float]:
        return float(x.mean()), float(x.std(ddof=1) * t)

    est, mid_m = summary(fig.mid[:, 0])
    lo, lo_m = summary(fig.lo[:, 0])
    hi, hi_m = summary(fig.hi[:, 0])
    value = {
        "estimate": est,
        "lower": min(lo - lo_m, est),
        "upper": max(hi + hi_m, est),
        "confidence": confidence,
        "statistical": {"lower": est - mid_m, "upper": est + mid_m},
        "identification": {"lower": lo, "upper": hi},
    }
    costs = {}
    for j, name in enumerate(cost_names, start=1):
        c_est, _ = summary(fig.mid[:, j])
        c_lo, c_lo_m = summary(fig.lo[:, j])
        c_hi, c_hi_m = summary(fig.hi[:, j])
        costs[name] = {
            "estimate": c_est,
            "lower": max(0.0, min(c_lo - c_lo_m, c_est)),
            "upper": max(c_hi + c_hi_m, c_est),
            "confidence": confidence,
        }
    return value, costs


def importance_block(
    data: EvalData,
    fig: HeadFigures,
    mean: np.ndarray,
    log_std: np.ndarray | None,
    logp_mu: np.ndarray,
    *,
    gamma: float,
    confidence: float,
    config: ISConfig,
    seed: int,
) -> tuple[dict, dict]:
    """Importance-sampling cross-checks (overall and per source) and their diagnostics.

    Doubly robust needs a Q-function of the policy at the logged rows; it is reported
    when fitted Q evaluation gave one (``fig.q_logged``).
    """
    kernel = config.bandwidth * (data.action.std(axis=0) + 1e-6)
    log_pi = policy_logp(data.action.astype(np.float64), mean, log_std, kernel)
    log_rho = log_pi - logp_mu
    start_source = data.source[data.starts][data.episode]
    q = fig.q_logged[:, 0] if fig.q_logged is not None else None
    v = fig.v_state[:, 0] if fig.v_state is not None else None

    def run(subset: np.ndarray | None) -> dict:
        rows = np.arange(data.n) if subset is None else np.flatnonzero(subset)
        _, ep = np.unique(data.episode[rows], return_inverse=True)

        def fn(w: np.ndarray) -> dict[str, float]:
            out = estimates(
                reward=data.reward[rows],
                log_rho=log_rho[rows],
                episode=ep,
                step=data.step[rows],
                gamma=gamma,
                clip=config.clip,
                q_logged=None if q is None else q[rows],
                v_state=None if v is None else v[rows],
                episode_weights=w,
            )
            return out

        return with_intervals(fn, int(ep.max()) + 1, config.bootstrap, seed, confidence)

    overall = run(None)
    block = {k: val for k, val in overall.items() if k != "diagnostics"}
    block["by_source"] = {str(s): run(start_source == s) for s in np.unique(start_source.astype(str))}
    diag = {
        "importance_ess": overall["diagnostics"]["ess"],
        "importance_ess_share": overall["diagnostics"]["ess_share"],
        "kernel_bandwidth": None if log_std is not None else kernel.tolist(),
    }
    return block, diag
