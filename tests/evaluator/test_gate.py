"""The gate's checks, config validation and renderings, on reports with known figures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from roadworthy.data.errors import UsageError
from roadworthy.evaluator.gate import verdict
from roadworthy.evaluator.gate_config import GateConfig, OodSection, load_gate_config, parse_gate_config
from roadworthy.evaluator.gate_render import junit_xml, markdown, table_rows


def entry(name: str, value: list[float], width: float = 0.0, collision: list[float] | None = None, coverage=1.0):
    """A report entry whose heads are given: lower = value - width, upper = value + width."""
    v = np.asarray(value, dtype=float)
    c = np.asarray(collision if collision is not None else [0.01] * len(v), dtype=float)

    def fig(x, w):
        return {"estimate": float(x.mean()), "lower": float(x.mean() - w), "upper": float(x.mean() + w)}

    return {
        "name": name,
        "file": f"/nonexistent/{name}.onnx",
        "value": fig(v, width + 1.0),
        "coverage": coverage,
        "coverage_by": {
            "source": {"autopilot": {"coverage": coverage, "rows": 100}, "human": {"coverage": 1.0, "rows": 50}},
            "scenario": {"highway": {"coverage": coverage, "rows": 150}},
        },
        "costs": {"collision": fig(c, 0.01)},
        "heads": {
            "value": {"estimate": v.tolist(), "lower": (v - width).tolist(), "upper": (v + width).tolist()},
            "costs": {"collision": {"estimate": c.tolist(), "lower": c.tolist(), "upper": c.tolist()}},
        },
    }


def report(*entries, behavior=None) -> dict:
    return {
        "roadworthy_version": "test",
        "logs": "logs",
        "rows": 150,
        "episodes": 10,
        "policies": list(entries),
        **({"behavior": behavior} if behavior else {}),
    }


NOISE = [50.0, 40.0, 60.0, 45.0, 55.0]  # shared by both policies: large spread across resamples


def test_paired_difference_cancels_shared_noise():
    # Candidate = baseline + 1 on every resample: the paired bound is exactly 1, although
    # each policy's own interval is about +-20 wide.
    cand = entry("cand", [x + 1 for x in NOISE])
    base = entry("base", NOISE)
    v = verdict(report(cand, base), "cand", "base", GateConfig())
    check = v["checks"][0]
    assert check["id"] == "value_non_inferiority" and check["passed"]
    assert check["observed"] == pytest.approx(1.0)
    assert check["threshold"] == pytest.approx(-0.1 * 50.0)


def test_value_fails_beyond_the_margin_on_the_chosen_figure():
    base = entry("base", NOISE)
    # Same estimate, but what the logs cannot tell could cost 8 (lower = value - 8).
    cand = entry("cand", NOISE, width=8.0)
    # Default: estimates (already charged for leaving the support), like for like.
    assert verdict(report(cand, base), "cand", "base", GateConfig())["passed"]
    worse = entry("worse", [x - 8.0 for x in NOISE])
    v = verdict(report(worse, base), "worse", "base", GateConfig())
    assert not v["passed"] and v["exit_code"] == 1
    assert v["failed_checks"] == ["value_non_inferiority"]
    assert v["checks"][0]["observed"] == pytest.approx(-8.0)
    # bound = "lower": the identification bounds, like for like (the baseline's width is 0).
    strict = replace(GateConfig(), value=replace(GateConfig().value, bound="lower"))
    v = verdict(report(cand, base), "cand", "base", strict)
    assert v["failed_checks"] == ["value_non_inferiority"]
    assert v["checks"][0]["observed"] == pytest.approx(-8.0)
    loose = replace(strict, value=replace(strict.value, margin=3.5))  # threshold -8.5
    assert verdict(report(cand, base), "cand", "base", loose)["passed"]
    # baseline_bound = "upper" compares with the baseline's optimistic figure.
    stricter = replace(loose, value=replace(loose.value, baseline_bound="upper"))
    assert not verdict(report(cand, entry("base", NOISE, width=1.0)), "cand", "base", stricter)["passed"]


def test_paired_bound_is_one_sided_student_t():
    d = np.array([1.0, -2.0, 0.5, 3.0, -1.5])
    cand = entry("cand", [x + y for x, y in zip(NOISE, d, strict=True)])
    v = verdict(report(cand, entry("base", NOISE)), "cand", "base", GateConfig())
    t = stats.t.ppf(0.95, len(d) - 1) * np.sqrt(1 + 1 / len(d))
    assert v["checks"][0]["observed"] == pytest.approx(d.mean() - t * d.std(ddof=1))
    assert v["checks"][0]["mean_difference"] == pytest.approx(d.mean())


def test_costs_coverage_limits_and_ood_checks():
    base = entry("base", NOISE, collision=[0.01, 0.02, 0.0, 0.01, 0.01])
    risky = entry("risky", NOISE, collision=[0.3, 0.35, 0.25, 0.3, 0.3], coverage=0.8)
    cfg = GateConfig()
    cfg = replace(cfg, costs=replace(cfg.costs, limits={"collision": 0.1}), ood=OodSection(max_rate=0.1))
    v = verdict(report(risky, base), "risky", "base", cfg)
    failed = set(v["failed_checks"])
    assert {"coverage_min", "cost_non_inferiority.collision", "cost_limit.collision"} <= failed
    assert "ood_rate.source=autopilot" in failed and "ood_rate.source=human" not in failed
    cov = next(c for c in v["checks"] if c["id"] == "coverage_min")
    assert cov["observed"] == pytest.approx(0.8) and cov["threshold"] == pytest.approx(0.95)
    safe = entry("safe", NOISE, collision=[0.01, 0.02, 0.0, 0.01, 0.01])
    assert verdict(report(safe, base), "safe", "base", cfg)["passed"]


def test_behavior_baseline():
    beh = entry("behavior", NOISE)
    beh.pop("coverage")
    v = verdict(report(entry("cand", [x + 0.5 for x in NOISE]), behavior=beh), "cand", "behavior", GateConfig())
    assert v["passed"] and v["baseline"]["name"] == "behavior" and "coverage" not in v["baseline"]


def test_renderings_say_what_the_verdict_says():
    base = entry("base", NOISE)
    cand = entry("cand", [x - 8.0 for x in NOISE], coverage=0.5)
    v = verdict(report(cand, base), "cand", "base", GateConfig())
    json.dumps(v, allow_nan=False)
    root = ET.fromstring(junit_xml(v))
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == [c["id"] for c in v["checks"]]
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == set(v["failed_checks"]) == {"value_non_inferiority", "coverage_min"}
    assert root.get("failures") == "2"
    md = markdown(v)
    assert "FAILED" in md and "`coverage_min` | **FAIL**" in md
    cols, rows = table_rows(v)
    assert len(rows) == len(v["checks"]) and cols[0] == "check"


def test_config_defaults_and_overrides(tmp_path):
    assert load_gate_config(None) == GateConfig()
    f = tmp_path / "gate.toml"
    f.write_text('[value]\nmargin = 1\n\n[costs.limits]\ncollision = 0.05\n\n[ood]\nmax_rate = 0.2\nby = ["source"]\n')
    cfg = load_gate_config(f)
    assert cfg.value.margin == 1.0 and isinstance(cfg.value.margin, float)
    assert cfg.costs.limits == {"collision": 0.05} and cfg.ood.by == ["source"]
    assert cfg.coverage == GateConfig().coverage


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[value]\nmargni = 1\n", "unknown key(s) margni"),
        ("[value]\nmargni = 1\n", "valid keys here are enabled, margin, relative_margin, bound, baseline_bound"),
        ("[valeu]\nmargin = 1\n", "unknown section(s) valeu"),
        ('[value]\nmargin = "big"\n', "[value].margin: expected a number"),
        ("[value]\nenabled = 1\n", "expected true or false"),
        ('[value]\nbaseline_bound = "mean"\n', 'use one of "same", "lower", "estimate", "upper"'),
        ('[value]\nbound = "upper"\n', 'use one of "estimate", "lower"'),
        ('[costs]\nbaseline_bound = "lower"\n', 'use one of "same", "upper", "estimate"'),
        ("[coverage]\nmin = 1.5\n", "[coverage].min: must lie in [0, 1]"),
        ("[evaluation]\ngamma = 0\n", "[evaluation].gamma: must lie in (0, 1]"),
        ('[ood]\nby = ["city"]\n', "unknown group(s) city"),
        ('[costs.limits]\ncollision = "x"\n', "[costs].limits.collision: expected a number"),
        ("[value\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key_and_the_fix(tmp_path, text, needle):
    f = tmp_path / "gate.toml"
    f.write_text(text)
    with pytest.raises(UsageError) as e:
        load_gate_config(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_config_must_exist(tmp_path):
    with pytest.raises(UsageError, match="no such gate config"):
        load_gate_config(tmp_path / "missing.toml")
    with pytest.raises(UsageError, match="expected a table"):
        parse_gate_config({"value": 3})


def test_evaluation_section_round_trips_through_evaluate_config():
    from roadworthy.evaluator.gate_config import EvaluationSection

    section = EvaluationSection(gamma=0.95, seed=3, heads=4, iterations=7, steps_per_iteration=9, hidden_units=16)
    cfg = GateConfig(evaluation=section)
    assert EvaluationSection.of(cfg.evaluate_config()) == section
