"""The Ray engine against the local engine on a local 2-CPU Ray cluster started here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]
ray = pytest.importorskip("ray")
pytest.importorskip("highway_env")

from roadworthy.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray with 2 CPUs, as on the CI machine: actor pools must leave a CPU for reads."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(sim_logs, tmp_path_factory):
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    folder = tmp_path_factory.mktemp("ray-model") / "m"
    BehaviorModel.fit(sim_logs, BehaviorConfig(model="gmm")).save(folder)
    return folder


def read_flags(path) -> pd.DataFrame:
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return frame.sort_values(["episode_id", "step"], ignore_index=True)


@pytest.mark.parametrize("with_policy", [False, True])
def test_score_gives_identical_flags(sim_logs, model_dir, tmp_path, with_policy):
    from roadworthy.data.sim.policies import example_policy_path

    args = ["score", str(sim_logs), "--model", str(model_dir)]
    if with_policy:
        args += ["--policy", str(example_policy_path("swerve"))]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "local.parquet"), "--json", str(tmp_path / "l.json")])
    assert res.exit_code == 0, res.output
    ray_args = ["-o", str(tmp_path / "ray"), "--engine", "ray", "--json", str(tmp_path / "r.json")]
    res = runner.invoke(app, [*args, *ray_args])
    assert res.exit_code == 0, res.output
    local, dist = read_flags(tmp_path / "local.parquet"), read_flags(tmp_path / "ray")
    assert len(local) == len(dist) and local["step"].tolist() == dist["step"].tolist()
    assert (local["is_ood"] == dist["is_ood"]).all() and (local["state_is_ood"] == dist["state_is_ood"]).all()
    np.testing.assert_allclose(local["logp"], dist["logp"], rtol=1e-5, atol=1e-6)
    lj, rj = json.loads((tmp_path / "l.json").read_text()), json.loads((tmp_path / "r.json").read_text())
    assert lj["is_ood"] == rj["is_ood"] and lj["by_source"] == rj["by_source"]


def test_dashboard_aggregates_are_identical(sim_logs):
    from roadworthy.dashboards.aggregates import compute_cell_aggregates

    local = compute_cell_aggregates(sim_logs, 10.0)
    dist = compute_cell_aggregates(sim_logs, 10.0, engine="ray")
    pd.testing.assert_frame_equal(local, dist, check_exact=False, rtol=1e-9)


def test_evaluate_report_matches_within_tolerance(sim_logs, model_dir):
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.evaluator.evaluate import EvaluateConfig, evaluate
    from roadworthy.evaluator.fqe import FQEConfig
    from roadworthy.evaluator.importance import ISConfig
    from roadworthy.evaluator.model_based import ModelConfig

    config = EvaluateConfig(
        heads=2,
        model=ModelConfig(hidden=(16, 16), steps=30, components=2, batch_size=256),
        fqe=FQEConfig(hidden=(16, 16), iterations=8, steps_per_iteration=5, batch_size=256),
        importance=ISConfig(bootstrap=10),
    )
    paths = [example_policy_path("swerve"), example_policy_path("stochastic")]
    a = evaluate(sim_logs, paths, model=model_dir, config=config)
    b = evaluate(sim_logs, paths, model=model_dir, config=config, engine="ray")
    # Stated tolerance: 1e-6 relative (float sums in other orders); flags and coverage exactly.
    for pa_, pb in zip(a["policies"], b["policies"], strict=True):
        assert pa_["coverage"] == pb["coverage"]
        assert pa_["coverage_by"]["source"] == pb["coverage_by"]["source"]
        for k in ("estimate", "lower", "upper"):
            assert pb["value"][k] == pytest.approx(pa_["value"][k], rel=1e-6, abs=1e-6)
        for c in pa_["costs"]:
            assert pb["costs"][c]["upper"] == pytest.approx(pa_["costs"][c]["upper"], rel=1e-6, abs=1e-6)
    for k in ("estimate", "lower", "upper"):
        assert b["behavior"]["value"][k] == pytest.approx(a["behavior"]["value"][k], rel=1e-9)


def test_engine_errors_exit_2(sim_logs, model_dir, tmp_path):
    res = runner.invoke(app, ["score", str(sim_logs), "--model", str(model_dir), "-o", "x", "--engine", "spark"])
    assert res.exit_code == 2 and "--engine must be local or ray" in res.stderr
    res = runner.invoke(app, ["score", str(sim_logs), "--model", str(model_dir), "-o", "x", "--address", "h:1"])
    assert res.exit_code == 2 and "--address only applies" in res.stderr


def test_hive_partition_columns_reach_both_engines(sim_logs, tmp_path):
    from roadworthy.dashboards.aggregates import compute_cell_aggregates
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.ray_engine import read_logs
    from roadworthy.data.writer import write_log

    table = scan_logs(sim_logs).read()
    write_log(table, tmp_path / "hive", schema=table.schema, partition_by=["scenario"])
    want = compute_cell_aggregates(sim_logs, 10.0)
    pd.testing.assert_frame_equal(compute_cell_aggregates(tmp_path / "hive", 10.0), want)
    pd.testing.assert_frame_equal(compute_cell_aggregates(tmp_path / "hive", 10.0, engine="ray"), want)
    got = read_logs(tmp_path / "hive", ["episode_id", "scenario"]).to_pandas()
    assert sorted(got["scenario"].unique()) == sorted(set(table.column("scenario").to_pylist()))
