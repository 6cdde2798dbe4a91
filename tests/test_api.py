"""The public API: typed results, readable reprs, and the same JSON as the commands."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

import roadworthy
from roadworthy.cli import app
from roadworthy.data.errors import LogError, UsageError
from roadworthy.evaluator.evaluate import EvaluateConfig
from roadworthy.evaluator.fqe import FQEConfig
from roadworthy.evaluator.model_based import ModelConfig
from roadworthy.results import Validation

runner = CliRunner()
SMALL = EvaluateConfig(
    heads=3,
    estimator="model",
    model=replace(ModelConfig(), steps=60, heads=3),
    fqe=replace(FQEConfig(), steps_per_iteration=5, iterations=20, hidden=(32, 32)),
)


def cli_json(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json", "-"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def fitted(sim_logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "model"
    return roadworthy.fit(sim_logs, out, model="gmm", seed=0)


def test_validate_matches_the_command(sim_logs):
    res = roadworthy.validate(sim_logs)
    assert isinstance(res, Validation)
    assert res.to_json() == cli_json("validate", str(sim_logs))
    assert res.rows == res.summary.rows > 0 and res.episodes == 12
    assert repr(res).startswith("<Validation: valid log") and f"{res.rows:,} rows" in repr(res)


def test_validate_raises_the_commands_errors(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(LogError, match=r"bad\.parquet"):
        roadworthy.validate(bad)


def test_fit_and_score_match_the_commands(sim_logs, fitted, tmp_path):
    from roadworthy.data.sim.policies import example_policy_path

    assert fitted.path.is_dir() and fitted.to_json()["config"]["model"] == "gmm"
    assert "gmm p(action | state)" in repr(fitted) and str(fitted.path) in repr(fitted)
    again = cli_json("fit", str(sim_logs), "-o", str(tmp_path / "m2"), "--model", "gmm", "--seed", "0")
    assert again["summary"] == fitted.to_json()["summary"]

    swerve = example_policy_path("swerve")
    scores = roadworthy.score(sim_logs, fitted.path, tmp_path / "a.parquet", policy=swerve)
    args = ["score", str(sim_logs), "-m", str(fitted.path), "-o", str(tmp_path / "b.parquet")]
    cli = cli_json(*args, "--policy", str(swerve))
    mine = scores.to_json()
    assert {k: v for k, v in mine.items() if k != "flags"} == {k: v for k, v in cli.items() if k != "flags"}
    assert mine["skipped_rows"] == 0 and mine["rows"] == roadworthy.validate(sim_logs).rows
    logged = roadworthy.score(sim_logs, fitted.path, tmp_path / "logged.parquet")
    assert scores.ood_rate > 3 * logged.ood_rate and "policy 'swerve'" in repr(scores)
    assert "logged actions" in repr(logged)
    with pytest.raises(UsageError, match="`alpha`"):
        roadworthy.score(sim_logs, fitted.path, tmp_path / "c.parquet", alpha=2.0)
    assert not (tmp_path / "c.parquet").exists()


def test_evaluate_and_gate_results(sim_logs, fitted):
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.evaluator.gate_config import EvaluationSection, GateConfig

    pols = [example_policy_path(n) for n in ("autopilot-clone", "swerve")]
    ev = roadworthy.evaluate(sim_logs, pols, model=fitted.path, config=SMALL)
    assert ev.names == ["autopilot-clone", "swerve"]
    assert ev.policy("swerve")["coverage"] < ev.policy("autopilot-clone")["coverage"]
    assert "autopilot-clone" in repr(ev) and "swerve" in repr(ev)
    json.dumps(ev.to_json(), allow_nan=False)
    with pytest.raises(KeyError):
        ev.policy("nobody")

    sec = EvaluationSection.of(SMALL)
    g = roadworthy.gate(sim_logs, pols[1], pols[0], config=replace(GateConfig(), evaluation=sec), model=fitted.path)
    assert not g.passed and g.exit_code == 1 and "coverage_min" in g.failed_checks
    assert g.to_json()["verdict_version"] == 1 and "swerve vs autopilot-clone: FAILED" in repr(g)
    with pytest.raises(UsageError, match="no such gate config"):
        roadworthy.gate(sim_logs, pols[1], pols[0], config="nope.toml", model=fitted.path)


def test_rollout_result(tmp_path):
    pytest.importorskip("highway_env")
    from roadworthy.data.sim.policies import example_policy_path

    res = roadworthy.rollout([example_policy_path("autopilot-clone")], 2, seed=3, duration=4.0, workers=1)
    assert res.to_json()["episodes"] == 2 and "autopilot-clone" in repr(res)
