"""The behaviour model on real simulator logs: fit, score, explain, persist, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.data.errors import LogError, UsageError
from roadworthy.density.behavior import BehaviorConfig, BehaviorModel
from roadworthy.density.persistence import ModelFileError
from tests.conftest import make_table, write_table

pytest.importorskip("highway_env")
runner = CliRunner()
FAST = {"epochs": 8, "hidden": (32, 32), "n_components": 4}


@pytest.fixture(scope="module")
def fitted(sim_logs, tmp_path_factory):
    model = BehaviorModel.fit(sim_logs, BehaviorConfig(model_params=FAST, slice_by=("speed_band",), min_bin=50))
    folder = tmp_path_factory.mktemp("model") / "m"
    model.save(folder)
    return model, folder


def test_fit_summary(fitted):
    model, _ = fitted
    s = model.summary_
    assert s["units"]["train"] + s["units"]["calibration"] == 12
    assert s["rows"]["calibration"] > 0 and "all" in s["thresholds"]


def test_save_load_round_trip_gives_identical_scores(fitted, sim_logs):
    model, folder = fitted
    again = BehaviorModel.load(folder)
    a = pa.concat_tables(list(model.iter_scores(sim_logs)))
    b = pa.concat_tables(list(again.iter_scores(sim_logs)))
    for col in ("logp", "pvalue", "is_ood", "state_logp", "state_is_ood"):
        np.testing.assert_array_equal(a.column(col).to_numpy(), b.column(col).to_numpy())
    assert a.column("episode_id").to_pylist() == b.column("episode_id").to_pylist()


def test_planted_swerve_is_flagged_and_explained(fitted, sim_logs):
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.planted import plant

    model, _ = fitted
    t = scan_logs(sim_logs).read()
    obs = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    act = t.column("action").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    po, pa_, kind = plant(obs, act, model.obs_names, per_kind=50)
    sw = kind == "swerve"
    scores = model.score_arrays(po[sw], pa_[sw])
    assert scores["is_ood"].mean() > 0.9
    why = model.explain(po[sw][0], pa_[sw][0], k=3)
    assert why["action_dims"][0]["name"] == "steer_rad" and abs(why["action_dims"][0]["z"]) > 3
    assert len(why["nearest"]) == 3 and why["nearest"][0]["distance"] <= why["nearest"][-1]["distance"]
    assert why["state_features"][0]["name"] in model.obs_names


def test_policy_actions_out_of_support(fitted, sim_logs):
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.data.sim.policies import example_policy_path

    model, _ = fitted
    rates = {}
    for name in ("autopilot-clone", "swerve"):
        pol = OnnxPolicy.load(example_policy_path(name))
        t = pa.concat_tables(list(model.iter_scores(sim_logs, policy=pol)))
        rates[name] = t.column("is_ood").to_numpy().mean()
        assert t.column("action").type.list_size == 2
    assert rates["swerve"] > rates["autopilot-clone"] + 0.1


def test_logs_with_other_features_are_refused(fitted, make_log):
    model, _ = fitted
    with pytest.raises(LogError, match="fitted on logs with other obs_names"):
        list(model.iter_scores(make_log(make_table(d=19))))


def test_too_few_episodes(make_log):
    with pytest.raises(UsageError, match="`block_steps`"):
        BehaviorModel.fit(make_log(make_table(episodes=1, steps=40)), BehaviorConfig(model_params=FAST))
    m = BehaviorModel.fit(
        make_log(make_table(episodes=1, steps=400), name="one.parquet"),
        BehaviorConfig(model="gmm", block_steps=50, min_bin=10),
    )
    assert m.summary_["units"]["split_by"] == "block"


def test_tampered_model_files_are_refused(fitted, tmp_path):
    _, folder = fitted
    meta = json.loads((folder / "model.json").read_text())
    meta["estimators"]["model"]["name"] = "os.system"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / "arrays.npz").write_bytes((folder / "arrays.npz").read_bytes())
    with pytest.raises(ModelFileError, match=r"unknown estimator 'os\.system'"):
        BehaviorModel.load(bad)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "model.json").write_text((folder / "model.json").read_text())
    np.savez(pickled / "arrays.npz", evil=np.array([object()], dtype=object))
    with pytest.raises(ModelFileError, match="pickled"):
        BehaviorModel.load(pickled)
    with pytest.raises(ModelFileError, match="not a roadworthy model folder"):
        BehaviorModel.load(tmp_path)


def test_cli_fit_and_score(sim_logs, tmp_path):
    res = runner.invoke(app, ["fit", str(sim_logs), "-o", str(tmp_path / "m"), "--epochs", "5", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["rows"]["train"] > 0
    flags = tmp_path / "flags.parquet"
    res = runner.invoke(app, ["score", str(sim_logs), "--model", str(tmp_path / "m"), "-o", str(flags), "--bh"])
    assert res.exit_code == 0, res.output
    t = pq.read_table(flags)
    assert {"episode_id", "step", "logp", "is_ood", "is_ood_bh", "state_is_ood"} <= set(t.column_names)
    assert t.schema.field("logp").type == pa.float64() and t.schema.field("is_ood").type == pa.bool_()
    assert t.num_rows == pq.read_metadata(next(sim_logs.glob("*.parquet"))).num_rows


def test_cli_errors_exit_2(sim_logs, tmp_path, make_log):
    assert runner.invoke(app, ["fit", str(sim_logs), "-o", str(tmp_path / "m"), "--alpha", "2"]).exit_code == 2
    assert runner.invoke(app, ["fit", str(sim_logs), "-o", str(tmp_path / "m"), "--model", "magic"]).exit_code == 2
    (tmp_path / "not-a-model").mkdir()
    args = ["score", str(sim_logs), "--model", str(tmp_path / "not-a-model"), "-o", str(tmp_path / "f.parquet")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "not a roadworthy model folder" in res.stderr
    assert not (tmp_path / "f.parquet").exists()
    one = make_log(make_table(episodes=1, steps=30))
    res = runner.invoke(app, ["fit", str(one), "-o", str(tmp_path / "m2")])
    assert res.exit_code == 2 and "--block-steps" in res.stderr


def test_bad_rows_of_a_flags_run_leave_no_file(fitted, tmp_path):
    _, folder = fitted
    t = make_table(d=19, a=2)
    from roadworthy.data.sim.features import ACTION_NAMES, OBS_NAMES
    from tests.conftest import log_metadata

    t = t.replace_schema_metadata(log_metadata(19, 2, obs_names=list(OBS_NAMES), action_names=list(ACTION_NAMES)))
    r = t.column("reward").to_numpy().copy()
    r[-1] = np.nan
    t = t.set_column(t.schema.get_field_index("reward"), "reward", pa.array(r))
    path = write_table(t, tmp_path / "nan.parquet")
    res = runner.invoke(app, ["score", str(path), "--model", str(folder), "-o", str(tmp_path / "out.parquet")])
    assert res.exit_code == 2 and "NaN" in res.stderr
    assert not (tmp_path / "out.parquet").exists()
