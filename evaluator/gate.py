"""The CI gate: checks on an evaluation report, and the versioned JSON verdict.

:func:`verdict` is a function of an evaluation report (from
:func:`roadworthy.evaluator.evaluate.evaluate`, which holds per-head figures on episode
resamples shared by every policy and by the logged behaviour), the names of
candidate and baseline, a :class:`~roadworthy.evaluator.gate_config.GateConfig`, and the
policy files the report names (it records their SHA-256; nothing else is read). The JSON
verdict is the source of truth; JUnit XML, Markdown and the terminal table are
rendered from it (:mod:`roadworthy.evaluator.gate_render`).

Paired comparisons: for each bootstrap head b, d_b = candidate_b - baseline_b on
the same resampled episodes (and, with the learned model, in the same learned world
with the same random numbers), so noise common to both cancels. The bound is the
one-sided ``confidence`` bound mean(d) -/+ t * sd(d) * sqrt(1 + 1/B), with t the
one-sided quantile of Student's t with B - 1 degrees of freedom: a non-inferiority
test at level 1 - confidence.

Which figure of each policy: by default the *estimate*, which is already pessimistic
in proportion to how far and how often a policy leaves the logged support (a decision
with support shortfall z ends the trajectory in a typical logged crash with probability
1 - exp(-kappa z)); the coverage check bounds how often that happens. ``bound`` set to
``lower`` (value) or ``upper`` (costs) uses the identification bounds instead (every
such decision may end in the worst outcome): a far stricter gate that, on the
benchmark, refused most safe updates (docs/gate.md). The baseline's figure is of the
same kind by default (like for like: identical policies differ by exactly 0);
``baseline_bound`` names another. Against ``behavior`` (the logged fleet's Monte Carlo
figures, no doubt to carry) the candidate's figures meet the logged ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from roadworthy.evaluator.gate_config import GateConfig
from roadworthy.evaluator.policy_entry import interval_multiplier

VERDICT_VERSION = 1


def _r(x: float | None) -> float | None:
    """Round to 6 significant digits: the verdict reports, it does not carry noise."""
    return None if x is None else float(f"{x:.6g}")


def sha256(path: str | Path) -> str | None:
    """Hex digest of a file, or None when it is not a file (``behavior``, ``module:callable``)."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _paired(cand: list[float], base: list[float], confidence: float, side: str) -> tuple[float, float]:
    d = np.asarray(cand, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    t = interval_multiplier(confidence, len(d), sided="one")
    sd = float(d.std(ddof=1))
    return float(d.mean()), float(d.mean() - t * sd if side == "lower" else d.mean() + t * sd)


def _check(
    cid: str,
    passed: bool,
    observed: float | None,
    threshold: float | None,
    comparison: str,
    reason: str,
    **extra: object,
) -> dict:
    return {
        "id": cid,
        "passed": bool(passed),
        "observed": _r(observed),
        "comparison": comparison,
        "threshold": _r(threshold),
        "reason": reason,
        **{k: _r(v) if isinstance(v, float) else v for k, v in extra.items()},
    }


def _find(report: dict, name: str) -> dict:
    if name == "behavior":
        return report["behavior"]
    for p in report["policies"]:
        if p["name"] == name:
            return p
    raise KeyError(name)


def value_checks(cand: dict, base: dict, behavior: bool, config: GateConfig) -> list[dict]:
    """Non-inferiority of the value (paired lower bound against the margin)."""
    if not config.value.enabled:
        return []
    conf = config.evaluation.confidence
    cv = config.value.bound
    vb = "estimate" if behavior else config.value.baseline_figure()
    diff, low = _paired(cand["heads"]["value"][cv], base["heads"]["value"][vb], conf, "lower")
    thr = -(config.value.margin + config.value.relative_margin * abs(base["value"]["estimate"]))
    ok = low >= thr
    reason = (
        f"paired {round(100 * conf)} % lower bound of candidate ({cv}) minus baseline ({vb}) is {low:.3g}, "
        + ("within" if ok else "beyond")
        + f" the margin {thr:.3g}"
    )
    return [
        _check("value_non_inferiority", ok, low, thr, ">=", reason, mean_difference=diff, mean_beyond_margin=diff < thr)
    ]


def coverage_checks(cand: dict, config: GateConfig) -> list[dict]:
    """Minimum share of the candidate's decisions inside the trusted support."""
    cov = cand["coverage"]
    ok = cov >= config.coverage.min
    reason = f"{100 * cov:.1f} % of the candidate's decisions lie inside the trusted support " + (
        "(enough)" if ok else f"(needs {100 * config.coverage.min:.1f} %)"
    )
    return [_check("coverage_min", ok, cov, config.coverage.min, ">=", reason)]


def cost_checks(cand: dict, base: dict, behavior: bool, config: GateConfig, channels: dict | None = None) -> list[dict]:
    """Per gated channel: paired upper bound of the cost difference against its margin.

    ``channels`` (the report's block of that name) adds how each channel was obtained
    (computed or learned) to its check; ``mean_beyond_margin`` says whether the mean
    difference alone, without the heads' spread, already lies beyond the margin.
    """
    conf = config.evaluation.confidence
    channels = channels or {}
    checks = []
    for ch in config.costs.gated(sorted(cand["costs"])):
        cid = f"cost_non_inferiority.{ch}"
        if ch not in cand["costs"] or ch not in base["costs"]:
            reason = f"cost channel '{ch}' is not in the log; the gate cannot vouch for it"
            checks.append(_check(cid, False, None, None, "<=", reason))
            continue
        if not config.costs.enabled:
            continue
        cc = config.costs.bound
        cb = "estimate" if behavior else config.costs.baseline_figure()
        diff, high = _paired(cand["heads"]["costs"][ch][cc], base["heads"]["costs"][ch][cb], conf, "upper")
        thr = config.costs.margin_for(ch) + config.costs.relative_margin * abs(base["costs"][ch]["estimate"])
        ok = high <= thr
        reason = (
            f"paired {round(100 * conf)} % upper bound of candidate ({cc}) minus baseline ({cb}) '{ch}' "
            f"is {high:.3g}, " + ("within" if ok else "beyond") + f" the margin {thr:.3g}"
        )
        info = channels.get(ch, {})
        extra = {k: info[k] for k in ("kind", "danger_check") if info.get(k)}
        extra = {f"channel_{k}": v for k, v in extra.items()}
        checks.append(
            _check(cid, ok, high, thr, "<=", reason, mean_difference=diff, mean_beyond_margin=diff > thr, **extra)
        )
    return checks


def limit_checks(cand: dict, config: GateConfig) -> list[dict]:
    """Absolute limits on the candidate's pessimistic costs."""
    checks = []
    for ch, limit in sorted(config.costs.limits.items()):
        up = cand["costs"].get(ch, {}).get("upper")
        ok = up is not None and up <= limit
        reason = (
            f"cost channel '{ch}' is not in the log"
            if up is None
            else f"candidate's pessimistic '{ch}' is {up:.3g}, " + ("under" if ok else "over") + f" {limit:.3g}"
        )
        checks.append(_check(f"cost_limit.{ch}", ok, up, limit, "<=", reason))
    return checks


def ood_checks(cand: dict, config: GateConfig) -> list[dict]:
    """Maximum out-of-support rate of the candidate per source or scenario group."""
    if config.ood.max_rate is None:
        return []
    checks = []
    for kind in config.ood.by:
        for group, g in sorted(cand["coverage_by"].get(kind, {}).items()):
            rate = 1.0 - g["coverage"]
            ok = rate <= config.ood.max_rate
            reason = (
                f"{100 * rate:.1f} % of the candidate's decisions on {g['rows']} {kind} '{group}' rows "
                "are outside the trusted support"
            )
            checks.append(_check(f"ood_rate.{kind}={group}", ok, rate, config.ood.max_rate, "<=", reason))
    return checks


def _channel_info(report: dict) -> dict:
    """Per cost channel: how it was obtained (computed or learned) and its danger-check status."""
    out = {c: {"kind": v.get("kind")} for c, v in report.get("channels", {}).items()}
    for c, v in report.get("estimator", {}).get("channels", {}).items():
        out.setdefault(c, {})["danger_check"] = v.get("status")
    return out


def verdict(report: dict, candidate: str, baseline: str, config: GateConfig) -> dict:
    """Run every configured check; the JSON-ready verdict.

    Parameters
    ----------
    report : dict
        An evaluation report holding both policies (and ``behavior``).
    candidate, baseline : str
        Policy names in the report; ``baseline`` may be ``"behavior"``.
    config : GateConfig
    """
    cand, base = _find(report, candidate), _find(report, baseline)
    behavior = baseline == "behavior"
    checks = [
        *value_checks(cand, base, behavior, config),
        *coverage_checks(cand, config),
        *cost_checks(cand, base, behavior, config, _channel_info(report)),
        *limit_checks(cand, config),
        *ood_checks(cand, config),
    ]
    passed = all(c["passed"] for c in checks)

    def who(p: dict, name: str) -> dict:
        out = {
            "name": name,
            "file": p.get("file"),
            "sha256": sha256(p["file"]) if p.get("file") else None,
            "value": {k: _r(p["value"][k]) for k in ("estimate", "lower", "upper")},
            "costs": {k: {kk: _r(c[kk]) for kk in ("estimate", "upper")} for k, c in sorted(p["costs"].items())},
        }
        if "coverage" in p:
            out["coverage"] = _r(p["coverage"])
        return out

    return {
        "verdict_version": VERDICT_VERSION,
        "tool": "roadworthy",
        "roadworthy_version": report.get("roadworthy_version"),
        "passed": passed,
        "exit_code": 0 if passed else 1,
        "failed_checks": [c["id"] for c in checks if not c["passed"]],
        "candidate": who(cand, candidate),
        "baseline": who(base, baseline),
        "logs": {"path": report["logs"], "rows": report["rows"], "episodes": report["episodes"]},
        "seed": config.evaluation.seed,
        "config": config.to_dict(),
        "checks": checks,
    }
