"""Which estimator gives each headline figure of a run, chosen from the data and checked on dangers.

Two estimators can give a policy's value and costs: the learned driving model
(:mod:`roadworthy.evaluator.model_eval`), fitted once per log with every policy driven in
it, and fitted Q evaluation (:mod:`roadworthy.evaluator.fqe`), fitted once per policy.
Neither is right on every log, and being right about the fleet's *value* says nothing
about seeing a danger the fleet never meets. :class:`Headline` owns the whole choice:

1. **Resamples.** The Poisson bootstrap weights of the episodes are drawn once, first
   from the seed; every estimator, every policy and the logged behaviour's own figures
   use them, so comparisons are paired.
2. **Value check.** Each ensemble member replays the logged actions of the episodes
   its resample left out (out-of-bag), re-anchored on the logged state every
   ``anchor_s`` seconds, and predicts their discounted return
   (:meth:`~roadworthy.evaluator.model_eval.ModelEvaluator.held_out_check`). Members whose
   held-out error lies further from the members' median than
   ``max(tolerance * |logged value|, 4 robust sds)`` learned a different world and are
   dropped, for every policy alike. The kept members' pooled relative error is the
   model's value error; within ``tolerance`` the model gives the value, else the one of
   the model and FQE of the logged behaviour (SARSA, checked on the same out-of-bag
   episodes) with the smaller error does.
3. **Danger check, per crash channel** (``collision``, ``off_road``). Every logged crash
   of an episode a member never trained on is replayed with its logged actions from
   ``danger_lead_s`` seconds before (:meth:`~roadworthy.evaluator.model_eval.ModelEvaluator.danger_check`);
   the estimator must come out with the event (mean chance at least ``danger_detection``).
   FQE's chance is its predicted discounted cost at the replay's start over the realized
   one. An estimator that misses the logged dangers of a channel is not the headline for
   that channel. Of the estimators that pass, the more pessimistic (per head, the larger
   cost) gives the figures. FQE is fitted for these checks only when the model fails one
   (or ``fqe_checks = "always"``). A channel on which no estimator passes is reported
   *unverified*, with the model's figures; a channel without logged events cannot be
   checked and says so.

Everything in this block is in the report's ``estimator`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.evaluator.bootstrap import episode_bootstrap
from roadworthy.evaluator.fqe import FQEResult, fit_fqe
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_eval import CRASH_CHANNELS, ModelEvaluator, event_rows, oob_check
from roadworthy.evaluator.policy_entry import HeadFigures
from roadworthy.evaluator.policy_view import logged_view
from roadworthy.evaluator.settings import HeadlineSettings

if TYPE_CHECKING:
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.density.behavior import BehaviorModel
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.model_based import DrivingModel
    from roadworthy.evaluator.policy_view import PolicyView


def _relative(check: dict) -> float:
    logged = float(check["logged"][0])
    return abs(float(check["error"][0])) / max(abs(logged), 1.0)


def _summary(check: dict) -> dict:
    out = {
        "predicted_value": float(check["predicted"][0]),
        "logged_value": float(check["logged"][0]),
        "relative_error": _relative(check),
        "per_member_error": [None if np.isnan(x) else float(x) for x in check["per_member"][:, 0]],
    }
    for key in ("kept_members", "screen_threshold", "anchor_steps"):
        if key in check:
            out[key] = check[key]
    return out


def screen_members(check: dict, heads: int, tolerance: float) -> tuple[np.ndarray, dict]:
    """Drop members whose held-out value error is an outlier; the check over the kept ones.

    Returns
    -------
    keep : (E,) bool
    dict
        The check restricted to the kept members (pooled error recomputed), with
        ``kept_members`` and ``screen_threshold``.
    """
    err = np.asarray(check["per_member"], dtype=np.float64)
    logged = float(check["logged"][0])
    e0 = err[:, 0]
    ok = ~np.isnan(e0)
    med = float(np.median(e0[ok])) if ok.any() else 0.0
    dev = np.where(ok, e0 - med, 0.0)
    mad = 1.4826 * float(np.median(np.abs(dev[ok]))) if ok.any() else 0.0
    thr = max(tolerance * max(abs(logged), 1.0), 4.0 * mad)
    keep = np.abs(dev) <= thr
    need = max(3, (heads + 1) // 2)
    if keep.sum() < need:  # never screen away most of the ensemble: keep the closest members
        keep = np.zeros(heads, dtype=bool)
        keep[np.argsort(np.abs(dev), kind="stable")[:need]] = True
    pooled = np.nanmean(err[keep], axis=0)
    out = {
        "predicted": np.asarray(check["logged"]) + pooled,
        "logged": np.asarray(check["logged"]),
        "error": pooled,
        "per_member": err,
        "kept_members": [int(i) for i in np.flatnonzero(keep)],
        "screen_threshold": thr,
    }
    if "anchor_steps" in check:
        out["anchor_steps"] = check["anchor_steps"]
    return keep, out


def fqe_danger_check(data: EvalData, fqe: FQEResult, weights: np.ndarray, lead_s: float, channels: list[str]) -> dict:
    """FQE of the logged behaviour on the logged crashes of held-out episodes: its predicted
    discounted cost at the replay's start over the realized one (capped at 1)."""
    lead = max(1, round(lead_s / data.dt))
    out = {}
    for j, name in enumerate(data.cost_names):
        if name not in channels:
            continue
        rows = event_rows(data, j)
        entry: dict = {"events": len(rows), "pairs": 0, "detected": None, "lead_s": lead * data.dt}
        if len(rows):
            first = data.starts[data.episode[rows]]
            start = np.maximum(rows - lead, first)
            q = fqe.q(data.obs[start], data.action[start], data.to_go[start])[..., 0]  # (E, M, 1 + C), plain
            realized = fqe_gamma(fqe) ** (rows - start)
            det = np.clip(q[..., 1 + j] / realized[None, :], 0.0, 1.0)
            oob = weights[:, data.episode[rows]] == 0
            entry["pairs"] = int(oob.sum())
            if oob.any():
                entry["detected"] = float(det[oob].mean())
        out[name] = entry
    return out


def fqe_checks(
    data: EvalData, config: EvaluateConfig, weights: np.ndarray, returns: np.ndarray
) -> tuple[FQEResult, dict]:
    """Fit FQE of the logged behaviour (SARSA) on the resamples ``weights`` and check it on held-out
    episodes: the value (as the model's) and every crash channel's logged events. ``roadworthy fit``
    saves the checks with the driving model, so that a run reuses them."""
    res = fit_fqe(
        data,
        logged_view(data),
        replace(config.fqe_config, heads=weights.shape[0]),
        gamma=config.gamma,
        seed=config.seed,
        weights=weights,
    )
    start_ep = data.episode[data.starts]
    value = _summary(oob_check(res.start_mid, returns[start_ep], weights[:, start_ep] == 0))
    crash = [c for c in data.cost_names if c in CRASH_CHANNELS]
    danger = fqe_danger_check(data, res, weights, config.headline.danger_lead_s, crash)
    return res, {"value": value, "danger": danger, "danger_lead_s": config.headline.danger_lead_s}


def fqe_gamma(fqe: FQEResult) -> float:
    """The discount FQE was fitted with."""
    return float(fqe.q.gamma)


@dataclass
class ChannelChoice:
    """Which estimator gives one cost channel's figures, and why."""

    chosen: list[str]
    checks: dict = field(default_factory=dict)
    status: str = "checked"

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"chosen": "max(" + ", ".join(self.chosen) + ")" if len(self.chosen) > 1 else self.chosen[0]} | {
            "status": self.status,
            "danger_check": self.checks,
        }


def choose_channel(checks: dict, base: str, detection: float, fixed: str | None = None) -> ChannelChoice:
    """Step 3 of the rule for one crash channel.

    Parameters
    ----------
    checks : dict
        Estimator name -> its danger check on this channel (``detected``, ``pairs``).
    base : str
        The value's estimator: the channel's when nothing can be checked or nothing passes.
    detection : float
        Smallest mean chance of reproducing the logged events that passes.
    fixed : str, optional
        An estimator the configuration fixes (the checks are still reported).
    """
    for chk in checks.values():
        chk["passed"] = chk["detected"] is not None and chk["detected"] >= detection
    passed = [k for k, v in checks.items() if v["passed"]]
    if not any(v["pairs"] for v in checks.values()):
        status, chosen = "no logged event of a held-out episode to check on", [base]
    elif passed:
        status, chosen = "checked: " + " and ".join(passed) + " reproduce(s) the logged events", passed
    else:
        status, chosen = "unverified: no estimator reproduces the logged events", [base]
    return ChannelChoice([fixed] if fixed else chosen, checks, status)


class Headline:
    """The estimators of one run, their checks, and the figures each policy gets.

    Parameters
    ----------
    data : EvalData
    behavior : BehaviorModel
    config : EvaluateConfig
    returns : (n_episodes, 1 + C) logged discounted returns
    driving : DrivingModel, optional
        A driving model saved by ``roadworthy fit`` for this log and these resamples.
    """

    def __init__(
        self,
        data: EvalData,
        behavior: BehaviorModel,
        config: EvaluateConfig,
        returns: np.ndarray,
        *,
        on_stage: Callable[[str], None] = lambda s: None,
        on_iteration: Callable[[int, float], None] | None = None,
        driving: DrivingModel | None = None,
        saved_checks: dict | None = None,
    ) -> None:
        from roadworthy.evaluator.policy_view import support_level

        self.data, self.config, self.on_iteration, self.stage = data, config, on_iteration, on_stage
        rule: HeadlineSettings = config.headline
        self.rule = rule
        self.weights = episode_bootstrap(np.random.default_rng(config.seed), config.heads, data.n_episodes)
        self.returns = returns
        self.model: ModelEvaluator | None = None
        self.fqe_behavior: FQEResult | None = None
        saved = (saved_checks or {}).get("fqe")
        ok = saved is not None and saved.get("danger_lead_s") == config.headline.danger_lead_s
        self.fqe_saved: dict | None = saved if ok else None
        n_ch = len(data.cost_names)
        self.keep = np.ones(config.heads, dtype=bool)
        self.value_checks: dict = {}
        self.channels: dict[str, ChannelChoice] = {}
        if config.estimator in ("auto", "model"):
            if driving is None:
                on_stage(f"fitting the driving model ({config.heads} heads, {config.model.steps} steps)")
            self.model = ModelEvaluator(
                data,
                behavior,
                self.weights,
                config=replace(config.model, heads=config.heads),
                settings=config.rollout,
                gamma=config.gamma,
                support_alpha=support_level(behavior, config.support_alpha),
                seed=config.seed,
                model=driving,
            )
            on_stage("checking the driving model on held-out episodes (value and logged dangers)")
            anchor = max(1, round(rule.anchor_s / data.dt))
            raw = self.model.held_out_check(returns, anchor_steps=anchor)
            if raw is not None:
                self.keep, checked = screen_members(raw, config.heads, rule.tolerance)
                self.value_checks["model"] = _summary(checked)
            self.model_danger = self.model.danger_check(rule.danger_lead_s)
        self.value_estimator = self._choose_value()
        self._choose_channels(n_ch)

    # -- the rule ----------------------------------------------------------------------
    def _fqe_checked(self) -> dict:
        """FQE of the logged behaviour, checked (value and dangers): saved by ``roadworthy fit``, or fitted now."""
        if self.fqe_saved is None:
            self.stage("fitting FQE of the logged behaviour (SARSA) for its held-out checks")
            self.fqe_behavior, self.fqe_saved = fqe_checks(self.data, self.config, self.weights, self.returns)
        self.value_checks["fqe"] = self.fqe_saved["value"]
        return self.fqe_saved

    def _choose_value(self) -> dict:
        cfg, tol = self.config, self.rule.tolerance
        if cfg.estimator != "auto":
            if cfg.estimator == "fqe":
                self._fqe_checked()
            return {"chosen": cfg.estimator, "rule": f"fixed by the configuration (estimator = {cfg.estimator!r})"}
        if "model" not in self.value_checks:
            self._fqe_checked()
            return {"chosen": "fqe", "rule": "the model could not be checked (no out-of-bag episodes)"}
        err_m = self.value_checks["model"]["relative_error"]
        if err_m <= tol:
            return {
                "chosen": "model",
                "rule": f"the model's held-out error on the logged return, {100 * err_m:.1f} %, is within the "
                f"{100 * tol:.0f} % tolerance",
            }
        self._fqe_checked()
        err_f = self.value_checks["fqe"]["relative_error"]
        chosen = "model" if err_m <= err_f else "fqe"
        return {
            "chosen": chosen,
            "rule": f"held-out errors on the logged return: model {100 * err_m:.1f} %, FQE {100 * err_f:.1f} % "
            f"(tolerance {100 * tol:.0f} %); the smaller wins",
        }

    def _choose_channels(self, n_ch: int) -> None:
        data, rule = self.data, self.rule
        crash = [c for c in data.cost_names if c in CRASH_CHANNELS]
        model_ok = {
            c: (self.model_danger[c]["detected"] or 0.0) >= rule.danger_detection
            for c in crash
            if self.model is not None and self.model_danger[c]["pairs"] > 0
        }
        need_fqe = rule.fqe_checks == "always" or (rule.fqe_checks == "auto" and not all(model_ok.values()))
        fqe_danger = {}
        if self.config.estimator != "model" and rule.fqe_checks != "never" and (need_fqe or "fqe" in self.value_checks):
            fqe_danger = {c: dict(v) for c, v in self._fqe_checked()["danger"].items()}
        base = self.value_estimator["chosen"]
        fixed = None if self.config.estimator == "auto" else self.config.estimator
        for c in data.cost_names:
            if c not in crash:
                self.channels[c] = ChannelChoice([base], status="not a crash channel: not danger-checked")
                continue
            checks = {}
            if self.model is not None:
                checks["model"] = self.model_danger[c]
            if c in fqe_danger:
                checks["fqe"] = fqe_danger[c]
            self.channels[c] = choose_channel(checks, base, rule.danger_detection, fixed)

    # -- figures -----------------------------------------------------------------------
    @property
    def needs_fqe(self) -> bool:
        """Whether any figure of a policy comes from FQE."""
        return self.value_estimator["chosen"] == "fqe" or any("fqe" in ch.chosen for ch in self.channels.values())

    @property
    def kept_weights(self) -> np.ndarray:
        """The resamples of the heads the run kept, (kept heads, episodes)."""
        return self.weights[self.keep]

    def figures(self, policy: OnnxPolicy, view: PolicyView) -> HeadFigures:
        """Per-head figures (kept heads) of one policy, every channel from its chosen estimator(s)."""
        data, k = self.data, self.keep
        parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        diag: dict = {}
        v_state = q_logged = None
        cell_horizon = False
        if self.model is not None:
            res = self.model.run(self.model.policy_actions(policy))
            ph = self.model.per_head(res)
            parts["model"] = (ph.mid[k], ph.lo[k], ph.hi[k])
            diag |= {
                "simulated_outside_support": ph.outside,
                "simulated_state_outside_support": ph.state_outside,
                "simulated_failure_mass": ph.hazard,
                "members_kept": int(k.sum()),
            }
            per_row = self.model.cost_to_go(policy)
            v_state = np.column_stack([np.full(len(per_row), np.nan), per_row])
            cell_horizon = True
        if self.needs_fqe:
            fqe = fit_fqe(
                data,
                view,
                self.config.fqe_config,
                gamma=self.config.gamma,
                seed=self.config.seed,
                weights=self.weights,
                on_iteration=self.on_iteration,
            )
            parts["fqe"] = (fqe.mid[k], fqe.lo[k], fqe.hi[k])
            diag["fqe_final_loss"] = float(fqe.losses[-1])
            if "model" not in parts:
                v_state, q_logged = fqe.v_state, fqe.q_logged
        value_from = self.value_estimator["chosen"]
        mid, lo, hi = (np.array(x, copy=True) for x in parts[value_from])
        for j, name in enumerate(data.cost_names, start=1):
            chosen = [c for c in self.channels[name].chosen if c in parts]
            if not chosen:
                continue
            for arr, idx in ((mid, 0), (lo, 1), (hi, 2)):
                arr[:, j] = np.max([parts[c][idx][:, j] for c in chosen], axis=0)
        estimator = value_from if len(parts) == 1 else "+".join(sorted(parts))
        return HeadFigures(
            mid, lo, hi, estimator, diag, q_logged=q_logged, v_state=v_state, cell_horizon_s=cell_horizon
        )

    def to_dict(self) -> dict:
        """The report's ``estimator`` block."""
        out = {
            "chosen": self.value_estimator["chosen"],
            "rule": self.value_estimator["rule"],
            "held_out": self.value_checks,
            "kept_members": [int(i) for i in np.flatnonzero(self.keep)],
            "channels": {c: ch.to_dict() for c, ch in self.channels.items()},
            "settings": {
                "tolerance": self.rule.tolerance,
                "anchor_s": self.rule.anchor_s,
                "danger_lead_s": self.rule.danger_lead_s,
                "danger_detection": self.rule.danger_detection,
                "fqe_checks": self.rule.fqe_checks,
            },
        }
        return out

    def describe_world(self) -> dict:
        """The report's ``channels`` (how each cost channel is obtained) and ``geometry`` blocks."""
        if self.model is not None:
            return self.model.world.describe()
        reason = self.data.geometry_reason or "the geometry is used by the learned model only"
        return {
            "channels": {
                c: {"kind": "learned", "how": "fitted Q evaluation of the logged costs"} for c in self.data.cost_names
            },
            "geometry": {"available": False, "reason": reason},
        }
