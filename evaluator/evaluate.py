"""Conservative off-policy evaluation of policy files on a driving log.

For each policy: its actions on every logged state, gated by the behaviour density
(trusted support at ``support_alpha``), give its coverage; the value and every cost
channel come from the headline estimator, chosen per run from the data
(:mod:`roadworthy.evaluator.headline`):

* the learned driving model (:mod:`roadworthy.evaluator.model_eval`), fitted once on the log,
  every policy driven in it from the logged starts, pessimistic in proportion to how
  far its decisions leave the logged support (:mod:`roadworthy.evaluator.model_rollout`);
* fitted Q evaluation with density-gated pessimism (:mod:`roadworthy.evaluator.fqe`), fitted
  per policy.

Importance sampling (:mod:`roadworthy.evaluator.importance`) runs beside as a cross-check.

Every figure comes per bootstrap head, on Poisson resamples of the episodes drawn
first from the seed and shared by every policy and by the logged behaviour's own
figures, so that comparisons between them (:mod:`roadworthy.evaluator.gate`) are paired.
``value.lower`` combines both kinds of doubt: the lower bound after out-of-support
decisions minus the statistical margin across heads. ``costs.<name>.upper`` is the
mirror image for costs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.errors import UsageError
from roadworthy.data.policy_code import load_policy
from roadworthy.density.behavior import BehaviorModel
from roadworthy.evaluator.coverage import coverage_by
from roadworthy.evaluator.evaluate_config import EvaluateConfig
from roadworthy.evaluator.headline import Headline
from roadworthy.evaluator.logdata import EvalData, load_eval_data
from roadworthy.evaluator.model_eval import episode_returns
from roadworthy.evaluator.model_io import saved_driving
from roadworthy.evaluator.policy_entry import (
    figures_block,
    heads_dict,
    importance_block,
    interval_multiplier,
)
from roadworthy.evaluator.policy_view import (
    behavior_logp_arrays,
    episode_keys,
    support_level,
    to_policy_view,
    view_arrays,
)

if TYPE_CHECKING:
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.evaluator.policy_view import PolicyView


def policy_view(
    data: EvalData, policy: OnnxPolicy, model: BehaviorModel, config: EvaluateConfig, seed: int
) -> PolicyView:
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
    return to_policy_view(arrays), arrays["out_of_bounds"]


def behavior_value(
    data: EvalData, config: EvaluateConfig, weights: np.ndarray, returns: np.ndarray | None = None
) -> dict:
    """Value and costs of the logged behaviour itself: Monte Carlo over the logged episodes.

    Computed on the same Poisson episode resamples as the estimators' heads, so that a
    policy can be compared with the behaviour pairwise. No identification part: the
    logs are the behaviour's own outcomes. ``returns``: the (episodes, 1 + C)
    discounted returns when another engine summed them (Ray). ``weights``: the run's
    resamples of the heads it kept (:attr:`roadworthy.evaluator.headline.Headline.kept_weights`).
    """
    w = weights
    ret = episode_returns(data, config.gamma) if returns is None else returns
    per_head = (w @ ret) / w.sum(axis=1, keepdims=True)  # (E, C)
    t = interval_multiplier(config.confidence, len(w))
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
        "heads": heads_dict(per_head, per_head, per_head, data.cost_names),
    }


def behavior_log_density(data: EvalData, model: BehaviorModel) -> np.ndarray:
    """log mu(a | s) of every logged action: logged ``behavior_logp`` where known, else the model's."""
    return behavior_logp_arrays(data.obs, data.action, data.behavior_logp, model)


def evaluate_policy(
    data: EvalData,
    path: str | Path,
    model: BehaviorModel,
    logp_mu: np.ndarray,
    config: EvaluateConfig,
    headline: Headline,
    *,
    allow_code: bool = False,
    view: dict | None = None,
) -> dict:
    """Evaluate one policy file; the report entry of contract section 3.

    ``view``: the output of :func:`roadworthy.evaluator.policy_view.view_arrays` for every row of
    ``data`` in order, when another engine computed it (Ray); computed here otherwise.
    ``heads`` holds the per-head figures behind the intervals, for paired comparisons.
    """
    policy = load_policy(path, obs_names=data.obs_names, action_names=data.action_names, allow_code=allow_code)
    if view is None:
        (pv, mean, log_std), oob = policy_view(data, policy, model, config, config.seed)
    else:
        (pv, mean, log_std), oob = to_policy_view(view), view.get("out_of_bounds")
    fig = headline.figures(policy, pv)
    value, costs = figures_block(fig, data.cost_names, config.confidence)
    coverage = float(1.0 - pv.gate.mean())
    per_row = {}
    if fig.v_state is not None:
        per_row = {f"cost_{name}": fig.v_state[:, j] for j, name in enumerate(data.cost_names, start=1)}
    q_fig = fig if fig.q_logged is not None else replace(fig, v_state=None)
    is_block, is_diag = importance_block(
        data,
        q_fig,
        mean,
        log_std,
        logp_mu,
        gamma=config.gamma,
        confidence=config.confidence,
        config=config.importance,
        seed=config.seed,
    )
    entry: dict = {
        "name": policy.name,
        "file": str(path),
        "stochastic": policy.stochastic,
        "value": value,
        "coverage": coverage,
        "ood_rate": 1.0 - coverage,
        "coverage_by": coverage_by(pv.gate, data, config.cell, per_row),
        # Decisions whose mean action lies outside the log's action bounds (clipped to be
        # scored, as the car would; `roadworthy score` flags them per row).
        "out_of_bounds": {
            "decisions": int(oob.sum()) if oob is not None else None,
            "share": float(oob.mean()) if oob is not None and oob.size else 0.0,
        },
        "costs": costs,
        "heads": heads_dict(fig.mid, fig.lo, fig.hi, data.cost_names),
        "estimators": {
            fig.estimator: {k: value[k] for k in ("estimate", "lower", "upper", "confidence")},
            **is_block,
        },
        "diagnostics": {
            "estimator": fig.estimator,
            "heads": int(fig.mid.shape[0]),
            **fig.diagnostics,
            **is_diag,
            "behavior_logp_rows": int(np.isfinite(data.behavior_logp).sum()),
            "support_alpha": config.support_alpha,
            "support_alpha_used": support_level(model, config.support_alpha),
        },
    }
    if fig.cell_horizon_s:
        # The model's per-cell costs look a few seconds ahead, not to the end of the episode.
        entry["coverage_by"]["map_region"]["cost_horizon_steps"] = 25
    if "disengagement" in costs:
        entry["disengagement_rate"] = costs["disengagement"]
    return entry


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
        returns) on Ray (:mod:`roadworthy.evaluator.ray_eval`); the report is the same.
    address : str, optional
        Ray cluster address (default: start a local Ray).

    Raises
    ------
    LogError, PolicyError, UsageError
    """
    from roadworthy._version import __version__
    from roadworthy.data.ray_engine import check_engine

    config = config or EvaluateConfig()
    config.validate()
    check_engine(engine, address)  # "Ray" or a typo must not quietly run locally
    if not policies:
        raise UsageError("no policy given", "give one or more policy files in `policies`")
    stage = on_stage or (lambda s: None)
    data, bm, model_desc = _checked_inputs(logs, policies, model, allow_code, stage)
    with ExitStack() as stack:
        rows = None
        if engine == "ray":
            from roadworthy.data.ray_engine import ray_session
            from roadworthy.evaluator.ray_eval import RayRowWork

            stage("starting Ray" if not address else f"connecting to Ray at {address}")
            stack.enter_context(ray_session(address))
            rows = RayRowWork(logs, data, model if isinstance(model, str | Path) else bm, config, allow_code)
            stack.callback(rows.close)
            stage("behaviour densities of the logged actions (Ray)")
            logp_mu = rows.behavior_logp()
        else:
            logp_mu = behavior_log_density(data, bm)
        returns = rows.episode_returns() if rows else episode_returns(data, config.gamma)
        driving, driving_note, checks = saved_driving(model, data, config)
        if config.estimator == "fqe":
            driving, driving_note = None, ""
        headline = Headline(
            data,
            bm,
            config,
            returns,
            on_stage=stage,
            on_iteration=on_iteration,
            driving=driving,
            saved_checks=checks,
        )
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
            "estimator": headline.to_dict() | ({"driving_model": driving_note} if driving_note else {}),
            **headline.describe_world(),
            "surrogates": data.surrogate.describe() if data.surrogate is not None else {},
            "config": _config_dict(config),
            "behavior": behavior_value(data, config, headline.kept_weights, returns),
            "policies": [],
        }
        for path in policies:
            stage(f"evaluating {Path(path).name}")
            view = rows.view(path) if rows else None
            report["policies"].append(
                evaluate_policy(data, path, bm, logp_mu, config, headline, allow_code=allow_code, view=view)
            )
            if on_policy:
                on_policy(report["policies"][-1])
    return report


def _checked_inputs(
    logs: str | Path,
    policies: Sequence[str | Path],
    model: str | Path | BehaviorModel | None,
    allow_code: bool,
    stage: Callable[[str], None],
) -> tuple[EvalData, BehaviorModel, str]:
    """Read the log; check the behaviour model, then every policy file, before any fitting."""
    stage("reading the log")
    data = load_eval_data(logs)
    if data.n_episodes < 2:
        raise UsageError(
            f"{logs} holds {data.n_episodes} episode(s); the bootstrap intervals need at least 2 "
            "(and are only meaningful with dozens)",
            "evaluate on a log with more episodes",
        )
    bm: BehaviorModel | None = None
    if isinstance(model, BehaviorModel):
        bm, model_desc = model, "given"
    elif model is not None:
        bm, model_desc = BehaviorModel.load(model), str(model)
    if bm is not None:
        bm.check_names(data.obs_names, data.action_names, model_desc)
    # Refuse a missing, mismatched or code-carrying policy file before minutes of fitting.
    for path in policies:
        load_policy(path, obs_names=data.obs_names, action_names=data.action_names, allow_code=allow_code)
    if bm is None:
        stage("fitting the behaviour density model (give a fitted `model` to reuse one)")
        bm = BehaviorModel.fit(logs)
        model_desc = "fitted on the fly"
    return data, bm, model_desc


def _config_dict(config: EvaluateConfig) -> dict:
    d = asdict(config)
    d["fqe"]["hidden"] = list(d["fqe"]["hidden"])
    d["model"]["hidden"] = list(d["model"]["hidden"])
    d["fqe"]["heads"] = config.heads
    d["model"]["heads"] = config.heads
    return d
