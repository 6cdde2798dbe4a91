"""Policy comparison: scorecards, estimator figures and gate verdicts from an evaluation report."""

from __future__ import annotations

import pandas as pd


def scorecards(report: dict) -> pd.DataFrame:
    """One row per policy: value with bounds, coverage, and each cost's estimate and upper bound."""
    rows = []
    for p in report.get("policies", []):
        v = p["value"]
        row = {
            "name": p["name"],
            "estimate": v["estimate"],
            "lower": v["lower"],
            "upper": v["upper"],
            "coverage": p["coverage"],
            "ood_rate": p["ood_rate"],
        }
        for c, fig in p.get("costs", {}).items():
            row[f"{c}"] = fig["estimate"]
            row[f"{c} upper"] = fig["upper"]
        rows.append(row)
    return pd.DataFrame(rows)


def cost_rows(report: dict, channel: str) -> pd.DataFrame:
    """``name, estimate, lower, upper`` of one cost channel, per policy."""
    rows = []
    for p in report.get("policies", []):
        c = p.get("costs", {}).get(channel)
        if c:
            rows.append(
                {"name": p["name"], "estimate": c["estimate"], "lower": c.get("lower", 0.0), "upper": c["upper"]}
            )
    return pd.DataFrame(rows, columns=["name", "estimate", "lower", "upper"])


def value_rows(report: dict, truth: dict | None = None) -> pd.DataFrame:
    """``name, estimate, lower, upper`` of the value per policy, with ``truth`` from a rollout JSON."""
    known = {p["name"]: p["value"]["estimate"] for p in (truth or {}).get("policies", [])}
    rows = [
        {
            "name": p["name"],
            "estimate": p["value"]["estimate"],
            "lower": p["value"]["lower"],
            "upper": p["value"]["upper"],
            "truth": known.get(p["name"]),
        }
        for p in report.get("policies", [])
    ]
    return pd.DataFrame(rows, columns=["name", "estimate", "lower", "upper", "truth"])


def estimator_table(report: dict) -> pd.DataFrame:
    """Each estimator's estimate per policy (FQE, per-decision IS, weighted IS, doubly robust)."""
    rows = []
    for p in report.get("policies", []):
        est = p.get("estimators", {})
        rows.append(
            {
                "name": p["name"],
                **{k: est[k]["estimate"] for k in ("fqe", "pdis", "wis", "dr") if k in est},
                "IS effective sample size": p.get("diagnostics", {}).get("importance_ess"),
            }
        )
    return pd.DataFrame(rows)


def gate_verdict(report: dict, candidate: str, baseline: str, config=None) -> dict:
    """The gate's verdict of ``candidate`` against ``baseline`` (a policy or ``behavior``), default thresholds.

    Raises
    ------
    ValueError
        When the report predates per-head figures (re-run ``roadworthy evaluate``).
    """
    from roadworthy.evaluator.gate import verdict
    from roadworthy.evaluator.gate_config import GateConfig

    if any("heads" not in p for p in report.get("policies", [])):
        raise ValueError("this report has no per-head figures; re-run roadworthy evaluate to gate from it")
    return verdict(report, candidate, baseline, config or GateConfig())
