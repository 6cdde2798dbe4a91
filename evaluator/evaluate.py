"""Conservative off-policy evaluation of policy files on a driving log.

For each policy: its actions on every logged state, gated by the behaviour
density (trusted support at ``support_alpha``), feed Fitted Q Evaluation with
density-gated pessimism (:mod:`evaluator.fqe`) for the value and every cost channel;
importance sampling (:mod:`evaluator.importance`) serves as a cross-check; coverage
(:mod:`evaluator.coverage`) says how much of the policy's behaviour the logs cover.

The report's ``value.lower`` combines both kinds of doubt: the lower output of FQE
(worst case after out-of-support decisions) minus the statistical margin across
bootstrap heads. ``costs.<name>.upper`` is the mirror image for costs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from data.errors import UsageError
from data.policy import OnnxPolicy
from data.policy_code import load_policy
from density.behavior import BehaviorModel
from evaluator.coverage import coverage_by
from evaluator.fqe import FQEConfig, episode_bootstrap, fit_fqe
from evaluator.importance import ISConfig, estimates, policy_logp, with_intervals
from evaluator.logdata import EvalData, load_eval_data
from evaluator.policy_view import (
    behavior_logp_arrays,
    episode_keys,
    support_level,
    to_policy_view,
    view_arrays,
)


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of an evaluation.

    Parameters
    ----------
    gamma : float
        Discount in (0, 1].
    support_alpha : float
        Conformal level below which a decision leaves the trusted support. Smaller
        than the flags' default: over a long episode, false alarms at 0.01 per
        decision would gate almost every trajectory.
    trust_alpha : float
        Conformal level above which the Q-function is evaluated at the policy's own
        action; below it, at the action pulled back toward the logged one until it
        reaches this level (a neural Q extrapolated into sparsely covered actions
        makes fitted Q iterations unstable).
    confidence : float
        Of the intervals.
    next_samples : int
        Actions drawn per state for a stochastic policy.
    cell : float
        Map cell size for coverage, m.
    seed : int
    fqe, importance : configs of the estimators
    """

    gamma: float = 0.99
    support_alpha: float = 0.001
    trust_alpha: float = 0.05
    confidence: float = 0.95
    next_samples: int = 8
    cell: float = 25.0
    seed: int = 0
    fqe: FQEConfig = field(default_factory=FQEConfig)
    importance: ISConfig = field(default_factory=ISConfig)

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings out of range."""
        if not 0.0 < self.gamma <= 1.0:
            raise UsageError(f"--gamma must lie in (0, 1], got {self.gamma}", "use a discount such as 0.99")
        if not 0.0 < self.support_alpha < 1.0:
            raise UsageError(f"--support-alpha must lie in (0, 1), got {self.support_alpha}", "e.g. 0.001")
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"confidence must lie in [0.5, 1), got {self.confidence}", "e.g. 0.95")
        if self.fqe.heads < 2:
            raise UsageError("FQE needs at least 2 bootstrap heads", "use --heads 5")
        if self.fqe.pessimism not in ("terminal", "horizon"):
            raise UsageError(f"unknown pessimism '{self.fqe.pessimism}'", "use terminal or horizon")


def policy_view(data: EvalData, policy: OnnxPolicy, model: BehaviorModel, config: EvaluateConfig, seed: int):
    """The policy's actions at every logged state, their support gates, mean and log-std (local engine)."""
    arrays = view_arrays(
        data.obs,
        data.action,
        episode_keys(data.episode_ids)[data.episode],
        data.step,
        policy,
        model,
        action_low=data.action_low,
        action_high=data.action_high,
        support_alpha=config.support_alpha,
        trust_alpha=config.trust_alpha,
        next_samples=config.next_samples,
        seed=seed,
    )
    return to_policy_view(arrays)


def _summary(values: np.ndarray, t: float) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) * t)


def evaluate_policy(
    data: EvalData,
    path: str | Path,
    model: BehaviorModel,
    logp_mu: np.ndarray,
    config: EvaluateConfig,
    *,
    on_iteration: Callable[[int, float], None] | None = None,
    allow_code: bool = False,
    view: dict | None = None,
) -> dict:
    """Evaluate one policy file; the report entry of contract section 3.

    ``view``: the output of :func:`evaluator.policy_view.view_arrays` for every row of
    ``data`` in order, when another engine computed it (Ray); computed here otherwise.

    ``heads`` holds the per-head figures behind the intervals (value and each cost:
    plain, lower, upper), on the episode resamples shared by every policy of the
    evaluation, for paired comparisons (:mod:`evaluator.gate`).
    """
    policy = load_policy(path, obs_names=data.obs_names, action_names=data.action_names, allow_code=allow_code)
    seed = config.seed
    if view is None:
        view, mean, log_std = policy_view(data, policy, model, config, seed)
    else:
        view, mean, log_std = to_policy_view(view)
    fqe = fit_fqe(data, view, config.fqe, gamma=config.gamma, seed=seed, on_iteration=on_iteration)
    e = config.fqe.heads
    t = float(stats.t.ppf(0.5 + config.confidence / 2, e - 1)) * np.sqrt(1 + 1 / e)
    est, _ = _summary(fqe.mid[:, 0], t)
    lo, lo_m = _summary(fqe.lo[:, 0], t)
    hi, hi_m = _summary(fqe.hi[:, 0], t)
    mid_m = _summary(fqe.mid[:, 0], t)[1]
    coverage = float(1.0 - view.gate.mean())
    entry: dict = {
        "name": policy.name,
        "file": str(path),
        "stochastic": policy.stochastic,
        "value": {
            "estimate": est,
            "lower": lo - lo_m,
            "upper": hi + hi_m,
            "confidence": config.confidence,
            "statistical": {"lower": est - mid_m, "upper": est + mid_m},
            "identification": {"lower": lo, "upper": hi},
        },
        "coverage": coverage,
        "ood_rate": 1.0 - coverage,
        "coverage_by": coverage_by(
            view.gate,
            data,
            config.cell,
            {f"cost_{name}": fqe.v_state[:, j] for j, name in enumerate(data.cost_names, start=1)},
        ),
        "costs": {},
        "heads": _heads(fqe.mid, fqe.lo, fqe.hi, data.cost_names),
    }
    for j, name in enumerate(data.cost_names, start=1):
        c_est, _ = _summary(fqe.mid[:, j], t)
        c_lo, c_lo_m = _summary(fqe.lo[:, j], t)
        c_hi, c_hi_m = _summary(fqe.hi[:, j], t)
        entry["costs"][name] = {
            "estimate": c_est,
            "lower": max(0.0, c_lo - c_lo_m),
            "upper": c_hi + c_hi_m,
            "confidence": config.confidence,
        }
    if "disengagement" in entry["costs"]:
        entry["disengagement_rate"] = entry["costs"]["disengagement"]

    # Importance sampling cross-checks (value channel), overall and per source.
    kernel = config.importance.bandwidth * (data.action.std(axis=0) + 1e-6)
    log_pi = policy_logp(data.action.astype(np.float64), mean, log_std, kernel)
    log_rho = log_pi - logp_mu
    start_source = data.source[data.starts][data.episode]

    def run(subset: np.ndarray | None, channel: np.ndarray, q: np.ndarray, v: np.ndarray) -> dict:
        rows = np.arange(data.n) if subset is None else np.flatnonzero(subset)
        _, ep = np.unique(data.episode[rows], return_inverse=True)
        n_ep = int(ep.max()) + 1

        def fn(w):
            return estimates(
                reward=channel[rows],
                log_rho=log_rho[rows],
                episode=ep,
                step=data.step[rows],
                gamma=config.gamma,
                clip=config.importance.clip,
                q_logged=q[rows],
                v_state=v[rows],
                episode_weights=w,
            )

        return with_intervals(fn, n_ep, config.importance.bootstrap, seed, config.confidence)

    is_all = run(None, data.reward, fqe.q_logged[:, 0], fqe.v_state[:, 0])
    entry["estimators"] = {
        "fqe": {"estimate": est, "lower": est - mid_m, "upper": est + mid_m, "confidence": config.confidence},
        "fqe_pessimistic": {"lower": lo - lo_m, "upper": hi + hi_m, "confidence": config.confidence},
        **{k: v for k, v in is_all.items() if k != "diagnostics"},
        "by_source": {
            str(s): {
                k: v for k, v in run(start_source == s, data.reward, fqe.q_logged[:, 0], fqe.v_state[:, 0]).items()
            }
            for s in np.unique(start_source.astype(str))
        },
    }
    entry["diagnostics"] = {
        "fqe_final_loss": float(fqe.losses[-1]),
        "fqe_heads": e,
        "importance_ess": is_all["diagnostics"]["ess"],
        "importance_ess_share": is_all["diagnostics"]["ess_share"],
        "behavior_logp_rows": int(np.isfinite(data.behavior_logp).sum()),
        "kernel_bandwidth": None if log_std is not None else kernel.tolist(),
        "support_alpha": config.support_alpha,
        "support_alpha_used": support_level(model, config.support_alpha),
    }
    return entry


def _heads(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray, cost_names: Sequence[str]) -> dict:
    def one(j: int) -> dict:
        return {"estimate": mid[:, j].tolist(), "lower": lo[:, j].tolist(), "upper": hi[:, j].tolist()}

    return {"value": one(0), "costs": {name: one(j) for j, name in enumerate(cost_names, start=1)}}


def behavior_value(data: EvalData, config: EvaluateConfig, returns: np.ndarray | None = None) -> dict:
    """Value and costs of the logged behaviour itself: Monte Carlo over the logged episodes.

    Computed on the same Poisson episode resamples as FQE's heads, so that a policy
    can be compared with the behaviour pairwise. No identification part: the logs
    are the behaviour's own outcomes. ``returns``: the (episodes, 1 + C) discounted
    returns when another engine summed them (Ray).
    """
    e = config.fqe.heads
    w = episode_bootstrap(np.random.default_rng(config.seed), e, data.n_episodes)
    if returns is None:
        disc = config.gamma ** data.step.astype(np.float64)
        channels = np.column_stack([data.reward, data.costs]) if data.costs.size else data.reward[:, None]
        returns = np.stack(
            [
                np.bincount(data.episode, weights=disc * channels[:, j], minlength=data.n_episodes)
                for j in range(channels.shape[1])
            ],
            axis=1,
        )
    ret = returns
    per_head = (w @ ret) / w.sum(axis=1, keepdims=True)  # (E, C)
    t = float(stats.t.ppf(0.5 + config.confidence / 2, e - 1)) * np.sqrt(1 + 1 / e)
    point = ret.mean(axis=0)
    margin = per_head.std(axis=0, ddof=1) * t

    def fig(j: int, floor: float | None = None) -> dict:
        lo = point[j] - margin[j]
        return {
            "estimate": float(point[j]),
            "lower": float(lo if floor is None else max(floor, lo)),
            "upper": float(point[j] + margin[j]),
            "confidence": config.confidence,
        }

    return {
        "name": "behavior",
        "value": fig(0),
        "costs": {name: fig(j, 0.0) for j, name in enumerate(data.cost_names, start=1)},
        "heads": _heads(per_head, per_head, per_head, data.cost_names),
    }


def behavior_log_density(data: EvalData, model: BehaviorModel) -> np.ndarray:
    """log mu(a | s) of every logged action: logged ``behavior_logp`` where known, else the model's."""
    return behavior_logp_arrays(data.obs, data.action, data.behavior_logp, model)


def evaluate(
    logs: str | Path,
    policies: Sequence[str | Path],
    *,
    model: str | Path | BehaviorModel | None = None,
    config: EvaluateConfig | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
    on_policy: Callable[[dict], None] | None = None,
    allow_code: bool = False,
    engine: str = "local",
    address: str | None = None,
) -> dict:
    """Evaluate policy files on a log; the JSON-ready report (contract section 3).

    Parameters
    ----------
    logs : str or Path
    policies : sequence of str or Path
        ONNX policy files.
    model : path, BehaviorModel or None
        The behaviour density model; fitted on ``logs`` when not given.
    config : EvaluateConfig
    allow_code : bool
        Also accept policy formats whose loading runs code (``.pt2``,
        ``module:callable``); for trusted files only.
    engine : {"local", "ray"}
        ``ray`` runs the row-wise work (policy views, behaviour densities, per-episode
        returns) on Ray (:mod:`evaluator.ray_eval`); the report is the same.
    address : str, optional
        Ray cluster address (default: start a local Ray).

    Raises
    ------
    LogError, PolicyError, UsageError
    """
    from evaluator import __version__

    config = config or EvaluateConfig()
    config.validate()
    if not policies:
        raise UsageError("no policy given", "pass --policy P.onnx (several times for several policies)")
    stage = on_stage or (lambda s: None)
    stage("reading the log")
    data = load_eval_data(logs)
    if model is None:
        stage("fitting the behaviour density model (pass --model to reuse one)")
        bm = BehaviorModel.fit(logs)
        model_desc = "fitted on the fly"
    elif isinstance(model, BehaviorModel):
        bm, model_desc = model, "given"
    else:
        bm, model_desc = BehaviorModel.load(model), str(model)
    bm.check_names(data.obs_names, data.action_names, model_desc)
    with ExitStack() as stack:
        rows = None
        if engine == "ray":
            from data.ray_engine import check_engine, ray_session
            from evaluator.ray_eval import RayRowWork

            check_engine(engine, address)
            stage("starting Ray" if not address else f"connecting to Ray at {address}")
            stack.enter_context(ray_session(address))
            rows = RayRowWork(logs, data, model if isinstance(model, str | Path) else bm, config, allow_code)
            stack.callback(rows.close)
            stage("behaviour densities of the logged actions (Ray)")
            logp_mu = rows.behavior_logp()
        else:
            logp_mu = behavior_log_density(data, bm)
        report = {
            "roadworthy_version": __version__,
            "gamma": config.gamma,
            "confidence": config.confidence,
            "logs": str(logs),
            "model": model_desc,
            "rows": data.n,
            "episodes": data.n_episodes,
            "horizon_steps": data.horizon,
            "reward_range": list(data.reward_range),
            "config": _config_dict(config),
            "behavior": behavior_value(data, config, rows.episode_returns() if rows else None),
            "policies": [],
        }
        for path in policies:
            stage(f"evaluating {Path(path).name}")
            view = rows.view(path) if rows else None
            report["policies"].append(
                evaluate_policy(
                    data, path, bm, logp_mu, config, on_iteration=on_iteration, allow_code=allow_code, view=view
                )
            )
            if on_policy:
                on_policy(report["policies"][-1])
    return report


def _config_dict(config: EvaluateConfig) -> dict:
    d = asdict(config)
    d["fqe"]["hidden"] = list(d["fqe"]["hidden"])
    return d
