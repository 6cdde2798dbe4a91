"""`roadworthy evaluate` end to end on real simulator logs (small settings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.density.behavior import BehaviorConfig, BehaviorModel
from roadworthy.evaluator.evaluate import EvaluateConfig, evaluate
from roadworthy.evaluator.fqe import FQEConfig
from roadworthy.evaluator.model_based import ModelConfig
from tests.conftest import make_table

pytest.importorskip("highway_env")
runner = CliRunner()
SMALL = EvaluateConfig(
    heads=3,
    estimator="fqe",
    model=ModelConfig(hidden=(32, 32), steps=200, components=2, batch_size=256),
    fqe=FQEConfig(hidden=(32, 32), iterations=25, steps_per_iteration=10, batch_size=256),
    importance=__import__("roadworthy.evaluator.importance", fromlist=["ISConfig"]).ISConfig(bootstrap=20),
)


@pytest.fixture(scope="module")
def model_dir(sim_logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bm") / "m"
    BehaviorModel.fit(sim_logs, BehaviorConfig(model_params={"epochs": 8, "hidden": (32, 32)})).save(folder)
    return folder


@pytest.fixture(scope="module")
def report(sim_logs, model_dir):
    from roadworthy.data.sim.policies import example_policy_path

    paths = [example_policy_path(n) for n in ("autopilot-clone", "swerve", "stochastic")]
    return evaluate(sim_logs, paths, model=model_dir, config=SMALL)


def test_report_follows_the_contract(report):
    assert report["gamma"] == 0.99
    for p in report["policies"]:
        v = p["value"]
        assert set(v) >= {"estimate", "lower", "upper", "confidence"}
        assert v["lower"] <= v["estimate"] <= v["upper"]
        assert 0.0 <= p["coverage"] <= 1.0 and p["ood_rate"] == pytest.approx(1 - p["coverage"])
        for c in ("collision", "off_road", "disengagement"):
            assert p["costs"][c]["estimate"] <= p["costs"][c]["upper"]
        assert {"fqe", "pdis", "wis", "dr", "by_source"} <= set(p["estimators"])
        assert p["diagnostics"]["estimator"] == "fqe" and len(p["heads"]["value"]["estimate"]) == 3
        assert set(p["coverage_by"]) == {"source", "scenario", "map_region"}
        assert p["coverage_by"]["map_region"]["cells"]
    json.dumps(report, allow_nan=False)


def test_out_of_support_policy_gets_a_wider_and_lower_interval(report):
    by = {p["name"]: p for p in report["policies"]}
    clone, swerve = by["autopilot-clone"], by["swerve"]
    assert swerve["coverage"] < clone["coverage"] - 0.05
    width = {n: p["value"]["identification"]["upper"] - p["value"]["identification"]["lower"] for n, p in by.items()}
    assert width["swerve"] > width["autopilot-clone"] + 10
    ident = {n: p["value"]["identification"]["lower"] for n, p in by.items()}
    assert ident["swerve"] < ident["autopilot-clone"]
    assert by["stochastic"]["stochastic"] is True


@pytest.fixture(scope="module")
def model_report(sim_logs, model_dir):
    from dataclasses import replace

    from roadworthy.data.sim.policies import example_policy_path

    paths = [example_policy_path(n) for n in ("autopilot-clone", "swerve")]
    return evaluate(sim_logs, paths, model=model_dir, config=replace(SMALL, estimator="model"))


def test_model_based_report_follows_the_contract(model_report):
    sel = model_report["estimator"]
    # The rule itself is tested on exact inputs in test_headline.py; the tiny model here is too rough.
    assert sel["chosen"] == "model" and "fixed by the configuration" in sel["rule"]
    check = sel["held_out"]["model"]
    assert np.isfinite(check["relative_error"]) and check["anchor_steps"] == 10  # 2 s at 5 Hz
    # Which channels were computed and which learned, and each crash channel's danger check.
    assert model_report["channels"]["off_road"]["kind"] == "computed"
    assert model_report["channels"]["collision"]["kind"] == "computed"
    assert model_report["channels"]["disengagement"]["kind"] == "learned"
    assert model_report["geometry"]["kinematics"]["source"] == "declared"
    assert set(sel["channels"]["off_road"]["danger_check"]) <= {"model", "fqe"}
    kept = check["kept_members"]
    assert len(kept) == 3  # screening never keeps fewer than three members
    for p in model_report["policies"]:
        assert len(p["heads"]["value"]["estimate"]) == len(kept) == p["diagnostics"]["members_kept"]
    assert len(model_report["behavior"]["heads"]["value"]["estimate"]) == len(kept)
    assert set(model_report["surrogates"]) == {"ttc", "headway"}
    by = {p["name"]: p for p in model_report["policies"]}
    for p in by.values():
        assert p["value"]["lower"] <= p["value"]["estimate"] <= p["value"]["upper"]
        assert {"ttc", "headway", "collision", "off_road"} <= set(p["costs"])
        assert p["diagnostics"]["estimator"] == "model"
        assert "dr" not in p["estimators"] and "pdis" in p["estimators"]
    # Steering off the logged support: more failure mass, a wider identification interval.
    assert (
        by["swerve"]["diagnostics"]["simulated_failure_mass"]
        > by["autopilot-clone"]["diagnostics"]["simulated_failure_mass"]
    )
    ident = {n: p["value"]["identification"] for n, p in by.items()}
    assert (
        ident["swerve"]["upper"] - ident["swerve"]["lower"]
        > ident["autopilot-clone"]["upper"] - ident["autopilot-clone"]["lower"]
    )
    json.dumps(model_report, allow_nan=False)


def test_same_seed_same_report(sim_logs, model_dir):
    from roadworthy.data.sim.policies import example_policy_path

    a = evaluate(sim_logs, [example_policy_path("cautious")], model=model_dir, config=SMALL)
    b = evaluate(sim_logs, [example_policy_path("cautious")], model=model_dir, config=SMALL)
    assert json.dumps(a) == json.dumps(b)


def test_cli_evaluate_writes_json_and_markdown(sim_logs, model_dir, tmp_path):
    from roadworthy.data.sim.policies import example_policy_path

    args = ["evaluate", str(sim_logs), "--policy", str(example_policy_path("fast")), "--model", str(model_dir)]
    args += [
        "--heads",
        "2",
        "--model-steps",
        "50",
        "--iterations",
        "10",
        "--json",
        str(tmp_path / "r.json"),
        "--markdown",
        str(tmp_path / "r.md"),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["policies"][0]["name"] == "fast"
    assert "| fast |" in (tmp_path / "r.md").read_text()


def test_cli_bad_input_exits_2(sim_logs, model_dir, tmp_path, make_log):
    from roadworthy.data.sim.policies import example_policy_path

    pol = str(example_policy_path("fast"))
    res = runner.invoke(app, ["evaluate", str(sim_logs), "--policy", pol, "--gamma", "1.5"])
    assert res.exit_code == 2 and "--gamma" in res.stderr
    other = make_log(make_table(d=3, a=2))
    res = runner.invoke(app, ["evaluate", str(other), "--policy", pol, "--model", str(model_dir)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "model was fitted on logs with other obs_names" in " ".join(res.stderr.split())
    # A policy whose names do not match the log (and a model fitted on that log).
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    other_model = tmp_path / "other-model"
    BehaviorModel.fit(other, BehaviorConfig(model="gmm")).save(other_model)
    res = runner.invoke(app, ["evaluate", str(other), "--policy", pol, "--model", str(other_model)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "obs" in res.stderr and pol.split("/")[-1] in " ".join(res.stderr.split())
    res = runner.invoke(app, ["evaluate", str(sim_logs), "--policy", pol, "--model", str(tmp_path)])
    assert res.exit_code == 2 and "model folder" in res.stderr
    steps = make_table(d=19, a=2)
    steps = steps.set_column(1, "step", __import__("pyarrow").array(np.asarray(steps.column("step")) + 1))
    res = runner.invoke(app, ["evaluate", str(make_log(steps, name="s.parquet")), "--policy", pol])
    assert res.exit_code == 2 and "start at 1" in res.stderr


def test_unknown_engine_is_refused_not_run_locally(sim_logs):
    from roadworthy.data.errors import UsageError
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.evaluator.evaluate import evaluate

    with pytest.raises(UsageError, match="`engine` must be local or ray, got 'Ray'"):
        evaluate(sim_logs, [example_policy_path("fast")], engine="Ray")
