"""Which estimator gives the headline figures of a run, chosen from the data.

Two estimators can give a policy's value and costs: the learned driving model
(:mod:`roadworthy.evaluator.model_eval`), fitted once per log with every policy driven in it, and
fitted Q evaluation (:mod:`roadworthy.evaluator.fqe`), fitted once per policy. Neither is right
on every log. Both are checked on the one policy whose value the logs show, the
logged behaviour. The rule, applied on every run with ``estimator = "auto"``:

1. Fit the model and drive the logged behaviour in it, closed loop (actions drawn
   from the behaviour density), from every logged start
   (:meth:`ModelEvaluator.behavior_check`). Per ensemble member, the *bias* is the
   simulated minus the logged return on the member's own (in-bag) episodes.
2. *Screen* the members (:func:`screen_members`): a member whose bias lies further
   from the members' median than ``max(tolerance * |logged value|, 4 robust sds)``
   has learned a different world from the others (for example one where the
   traffic crashes at random) and is dropped, for every policy and for the
   behaviour's own figures alike, so that paired comparisons stay paired.
3. Every kept member's value is *corrected* by its bias (a control variate:
   estimate(pi) = logged(mu) + model(pi) - model(mu), per member). Costs are not: a
   cost's upper bound must not rest on the bias carrying over from the behaviour.
4. The corrected model is checked on held-out episodes: on each member's
   *out-of-bag* episodes (never trained on), the simulated behaviour return minus
   the member's bias is compared with those episodes' logged return. The relative
   error is |mean error| / max(|logged|, 1) on the value channel.
5. If that error is at most ``tolerance``, the model is the headline. Otherwise
   fitted Q evaluation of the logged behaviour (SARSA: the logged next action at
   every row) is fitted on the same resamples and checked on the same out-of-bag
   episodes; the estimator with the smaller error is the headline.

When the behaviour density cannot sample (estimators other than the MDN), the
check falls back to replaying the logged actions, re-anchored every 10 steps
(:meth:`ModelEvaluator.held_out_check`), with no screening or correction. The
errors, the tolerance, the kept members and the choice are in the report
(``estimator``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from roadworthy.evaluator.fqe import FQEConfig, fit_fqe, logged_view
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_eval import oob_check

ESTIMATORS = ("auto", "model", "fqe")


@dataclass
class Selection:
    """The headline estimator of a run and why."""

    chosen: str
    rule: str
    checks: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"chosen": self.chosen, "rule": self.rule, "held_out": self.checks}


def _relative(check: dict) -> float:
    logged = float(check["logged"][0])
    return abs(float(check["error"][0])) / max(abs(logged), 1.0)


def _summary(check: dict) -> dict:
    out = {
        "predicted_value": float(check["predicted"][0]),
        "logged_value": float(check["logged"][0]),
        "relative_error": _relative(check),
        "per_member_error": [float(x) for x in check["per_member"][:, 0]],
    }
    for key in ("closed_loop", "raw_relative_error", "kept_members", "member_bias", "screen_threshold"):
        if key in check:
            out[key] = check[key]
    return out


@dataclass
class Screening:
    """Which ensemble members a run keeps, and each member's bias (E, 1 + C)."""

    keep: np.ndarray
    bias: np.ndarray


def screen_members(check: dict | None, heads: int, channels: int, tolerance: float) -> tuple[Screening, dict | None]:
    """Steps 2 to 4 of the rule: drop outlying members, correct by the bias, check on held-out episodes.

    Parameters
    ----------
    check : dict or None
        :meth:`ModelEvaluator.behavior_check` (closed loop, with ``bias``) or
        :meth:`ModelEvaluator.held_out_check` (no ``bias``: nothing screened or corrected).
    heads, channels : int
        Ensemble members and 1 + cost channels.
    tolerance : float

    Returns
    -------
    Screening, and the check restricted to kept members with corrected errors (the
    input unchanged when it had no ``bias``).
    """
    none = Screening(np.ones(heads, dtype=bool), np.zeros((heads, channels)))
    if check is None or "bias" not in check:
        return none, check
    bias = np.asarray(check["bias"], dtype=np.float64)
    logged = float(check["logged"][0])
    dev = bias[:, 0] - np.median(bias[:, 0])
    mad = 1.4826 * float(np.median(np.abs(dev)))
    thr = max(tolerance * max(abs(logged), 1.0), 4.0 * mad)
    keep = np.abs(dev) <= thr
    need = max(3, (heads + 1) // 2)
    if keep.sum() < need:  # never screen away most of the ensemble: keep the closest members
        keep = np.zeros(heads, dtype=bool)
        keep[np.argsort(np.abs(dev), kind="stable")[:need]] = True
    err = np.asarray(check["per_member"], dtype=np.float64) - bias
    kept_err = err[keep]
    pooled = np.nanmean(kept_err, axis=0)
    corrected = {
        "predicted": np.asarray(check["logged"]) + pooled,
        "logged": np.asarray(check["logged"]),
        "error": pooled,
        "per_member": kept_err,
        "closed_loop": True,
        "raw_relative_error": abs(float(check["error"][0])) / max(abs(logged), 1.0),
        "kept_members": [int(i) for i in np.flatnonzero(keep)],
        "member_bias": [float(x) for x in bias[:, 0]],
        "screen_threshold": thr,
    }
    return Screening(keep, bias), corrected


def fqe_held_out_check(
    data: EvalData, config: FQEConfig, weights: np.ndarray, returns: np.ndarray, *, gamma: float, seed: int
) -> dict:
    """FQE of the logged behaviour, checked on each head's out-of-bag episodes (as the model's check)."""
    res = fit_fqe(data, logged_view(data), replace(config, heads=weights.shape[0]), gamma=gamma, seed=seed)
    if not np.array_equal(res.head_weights, weights):
        raise RuntimeError("FQE drew other bootstrap resamples than the evaluation")  # pragma: no cover
    start_ep = data.episode[data.starts]
    oob = weights[:, start_ep] == 0
    ret = returns[start_ep]
    return oob_check(res.start_mid, ret, oob)


def choose(
    estimator: str,
    *,
    model_check: dict | None,
    fqe_check=None,
    tolerance: float,
) -> Selection:
    """Apply the rule of the module docstring.

    Parameters
    ----------
    estimator : {"auto", "model", "fqe"}
        ``model`` and ``fqe`` fix the choice (the checks are still reported).
    model_check : dict or None
        :meth:`roadworthy.evaluator.model_eval.ModelEvaluator.held_out_check`'s result.
    fqe_check : callable, optional
        Called without arguments for FQE's check when the rule needs it.
    tolerance : float
        Largest relative held-out error at which the model is kept without comparing.
    """
    checks: dict = {}
    if model_check is not None:
        checks["model"] = _summary(model_check)
    if estimator != "auto":
        return Selection(estimator, f"fixed by the configuration (estimator = {estimator!r})", checks)
    if model_check is None:
        return Selection("fqe", "the model could not be checked (no out-of-bag episodes)", checks)
    err_m = checks["model"]["relative_error"]
    if err_m <= tolerance:
        return Selection(
            "model",
            f"the model's held-out error on the logged behaviour's return, {100 * err_m:.1f} %, is within "
            f"the {100 * tolerance:.0f} % tolerance",
            checks,
        )
    checks["fqe"] = _summary(fqe_check())
    err_f = checks["fqe"]["relative_error"]
    chosen = "model" if err_m <= err_f else "fqe"
    return Selection(
        chosen,
        f"held-out errors on the logged behaviour's return: model {100 * err_m:.1f} %, FQE {100 * err_f:.1f} % "
        f"(tolerance {100 * tolerance:.0f} %); the smaller wins",
        checks,
    )
