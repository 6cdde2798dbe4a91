"""The dashboards' pure functions on real logs, checked against direct computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from roadworthy.dashboards import aggregates, comparison, disengagements, episodes, geometry, health
from roadworthy.data.dataset import scan_logs


def _table(logs) -> pd.DataFrame:
    return scan_logs(logs).read().to_pandas()


def test_cell_aggregates_match_a_direct_count(sim_logs, tmp_path):
    cell = 10.0
    frame = aggregates.cell_aggregates(sim_logs, cell, cache=tmp_path / "c")
    t = _table(sim_logs)
    t = t[np.isfinite(t["x"]) & np.isfinite(t["y"])]
    direct = t.assign(cx=np.floor(t["x"] / cell).astype(int), cy=np.floor(t["y"] / cell).astype(int))
    want = direct.groupby(["source", "cx", "cy"]).size()
    got = frame.set_index(["source", "cell_x", "cell_y"])["rows"]
    assert got.sort_index().to_dict() == want.sort_index().to_dict()
    assert frame["collision"].sum() == t["collision"].sum()
    assert frame["disengagement"].sum() == t["disengagement"].sum()
    # Cached: the second call reads the file, and a changed dataset changes the key.
    files = list((tmp_path / "c").glob("cells-*.parquet"))
    assert len(files) == 1
    pd.testing.assert_frame_equal(aggregates.cell_aggregates(sim_logs, cell, cache=tmp_path / "c"), frame)
    combined = aggregates.combine(frame, None, frame["map_name"].iloc[0])
    assert combined["rows"].sum() == len(t)
    assert np.allclose(combined["mean_speed"], combined["speed_sum"] / combined["rows"])


def test_wilson_interval_known_values():
    lo, hi = aggregates.wilson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(0.2775, abs=1e-3)
    assert lo[1] == pytest.approx(0.2366, abs=1e-3) and hi[1] == pytest.approx(0.7634, abs=1e-3)
    assert hi[2] == 1.0


def test_rows_in_cell_lists_the_logged_steps(sim_logs):
    frame = aggregates.compute_cell_aggregates(sim_logs, 25.0)
    top = frame.sort_values("rows").iloc[-1]
    rows = aggregates.rows_in_cell(sim_logs, top["map_name"], top["cell_x"], top["cell_y"], 25.0)
    same = (
        (frame["map_name"] == top["map_name"]) & (frame["cell_x"] == top["cell_x"]) & (frame["cell_y"] == top["cell_y"])
    )
    assert len(rows) == frame.loc[same, "rows"].sum()  # every source
    assert (np.floor(rows["x"] / 25.0) == top["cell_x"]).all()


def test_log_without_pose_gives_an_empty_map(make_log):
    from tests.conftest import make_table

    path = make_log(make_table())
    assert aggregates.compute_cell_aggregates(path).empty
    assert aggregates.pose_coverage(path) == {"rows": 15, "rows_with_pose": 0}


def test_episode_list_and_rows(sim_logs):
    eps = episodes.episode_list(sim_logs)
    t = _table(sim_logs)
    assert len(eps) == t["episode_id"].nunique() and eps["steps"].sum() == len(t)
    one = episodes.episode_rows(sim_logs, eps["episode_id"].iloc[0])
    assert one["step"].tolist() == list(range(len(one)))
    assert episodes.obs_matrix(one).shape == (len(one), len(scan_logs(sim_logs).metadata.obs_names))


def test_time_to_collision_from_features():
    names = ["lead_gap_m", "lead_rel_speed_mps"]
    ttc = episodes.time_to_collision(np.array([[20.0, -4.0], [20.0, 2.0], [100.0, -1.0]]), names)
    assert ttc.tolist() == [5.0, episodes.TTC_CAP, episodes.TTC_CAP]
    carla = [f"actor0_{q}" for q in ("dx_m", "dy_m", "dvx_mps", "dvy_mps")]
    assert episodes.time_to_collision(np.array([[12.0, 0.5, -3.0, 0.0]]), carla)[0] == pytest.approx(4.0)
    assert np.isnan(episodes.time_to_collision(np.zeros((1, 2)), ["a", "b"])[0])


def test_nearby_actors_are_placed_in_the_map_frame():
    from roadworthy.data.sim.features import OBS_NAMES, SENSOR_RANGE

    obs = np.full(len(OBS_NAMES), SENSOR_RANGE)
    obs[list(OBS_NAMES).index("lead_gap_m")] = 15.0
    obs[list(OBS_NAMES).index("left_follow_gap_m")] = 5.0
    a = geometry.nearby_actors(obs, OBS_NAMES, 100.0, 8.0, 0.0).set_index("label")
    assert a.loc["lead", "x"] == pytest.approx(120.0) and a.loc["lead", "y"] == pytest.approx(8.0)
    # Left of travel in a left-handed frame is -y.
    assert a.loc["left follow", "x"] == pytest.approx(90.0) and a.loc["left follow", "y"] == pytest.approx(4.0)
    carla = ["actor0_dx_m", "actor0_dy_m"]
    b = geometry.nearby_actors(np.array([10.0, 2.0]), carla, 0.0, 0.0, np.pi / 2)
    # Heading +y (south in CARLA); forward 10 m is +y, right of travel is -x.
    assert b["x"].iloc[0] == pytest.approx(-2.0) and b["y"].iloc[0] == pytest.approx(10.0)


def test_roads_of_the_simulator_and_of_a_carla_town(sim_logs, carla_logs):
    maps = geometry.available_maps(sim_logs)
    assert maps and geometry.load_roads(sim_logs, maps[0])["lane_type"].eq("driving").any()
    town = geometry.available_maps(carla_logs)
    roads = geometry.load_roads(carla_logs, town[0])
    assert {"driving", "sidewalk"} <= set(roads["lane_type"])
    assert "left-handed" in geometry.road_frame(carla_logs, town[0])
    assert geometry.load_roads(sim_logs, "nowhere") is None


def test_disengagement_windows_and_matching(sim_logs, dash_model):
    from roadworthy.density.behavior import BehaviorModel

    t = _table(sim_logs)
    res = disengagements.explore(sim_logs, window_s=2.0, model=BehaviorModel.load(dash_model))
    ev = res["events"]
    assert len(ev) == int(t["disengagement"].sum())
    if ev.empty:
        pytest.skip("the sample log has no takeover")
    w = res["windows"]
    take = w[w["group"] == "takeover"]
    assert take["rel_step"].max() == 0 and take["rel_step"].min() == -res["window_steps"]
    assert take["pvalue"].between(0, 1).all()
    assert (ev["from_source"] == "autopilot").all()  # the simulator's takeovers end autopilot driving
    ctrl = res["controls"]
    assert len(ctrl) > 0 and (ctrl.groupby("match_of").size() <= 3).all()
    assert (ctrl["source"] == "autopilot").all()
    clean = t.groupby("episode_id")["disengagement"].any()
    assert not clean[ctrl["episode_id"]].any()  # controls come from episodes without a takeover
    summ = disengagements.window_summary(w, "speed")
    assert set(summ["group"]) == {"takeover", "matched"} and (summ["lower"] <= summ["upper"]).all()


def test_policy_cells_and_scorecards_from_a_real_report(dash_report):
    rep = json.loads(dash_report.read_text())
    cells = aggregates.policy_cells(rep, "swerve")
    assert {"ood_rate", "rows", "cost_collision"} <= set(cells.columns)
    assert cells["ood_rate"].between(0, 1).all()
    swerve = next(p for p in rep["policies"] if p["name"] == "swerve")
    assert np.average(cells["ood_rate"], weights=cells["rows"]) == pytest.approx(swerve["ood_rate"], abs=1e-9)
    cards = comparison.scorecards(rep)
    assert cards["name"].tolist() == ["autopilot-clone", "swerve"]
    v = comparison.gate_verdict(rep, "swerve", "autopilot-clone")
    assert not v["passed"] and "coverage_min" in v["failed_checks"]
    assert comparison.value_rows(rep)["truth"].isna().all()


def test_health_accepts_good_logs_and_reports_rejections(sim_logs, make_log):
    h = health.data_health(sim_logs)
    assert h["ok"] and h["summary"]["rows"] == scan_logs(sim_logs).num_rows
    assert "obs" in h["schema"]["column"].tolist()
    assert health.source_table(h["summary"])["rows"].sum() == h["summary"]["rows"]
    from tests.conftest import make_table

    bad = make_table()
    bad = bad.set_column(1, "step", __import__("pyarrow").array(np.asarray(bad.column("step")) + 1))
    path = make_log(bad, name="bad.parquet")
    h = health.data_health(path)
    assert not h["ok"] and "start at 1" in h["error"] and str(path) in h["error"]


def test_inputs_travel_from_the_cli_to_the_app():
    from roadworthy.dashboards.inputs import dashboard_env, inputs_from_env

    inp = inputs_from_env(dashboard_env(["a", "b"], report="r.json"))
    assert len(inp.logs) == 2 and inp.report.endswith("r.json") and inp.model is None
    # Paths are made absolute: Streamlit's working folder need not be the caller's.
    assert all(Path(p).is_absolute() for p in (*inp.logs, inp.report)) and inp.engine == "local"


def test_crash_report_functions_add_up(sgo_dir):
    from roadworthy.dashboards import crashes

    inc = crashes.load(sgo_dir)
    assert inc["company"].notna().all()  # level-2 crashes fall back to the reporting maker
    table = crashes.over_time(inc)
    assert table.to_numpy().sum() == inc["month"].notna().sum()
    states = crashes.by_state(inc)
    assert states["crashes"].sum() == len(inc) and states.iloc[0]["state"] == "CA"
    fig = crashes.state_map_figure(states)
    assert sum(len(t.x) for t in fig.data) == len(crashes.STATE_TILES)
    tiles = set(crashes.STATE_TILES.values())
    assert len(tiles) == len(crashes.STATE_TILES)  # no two states on one tile
    shares = crashes.breakdown(inc, "partner")
    assert (shares.sum(axis=1).round(2) == 1.0).all()
    hits = crashes.search(inc, "cyclist")
    assert len(hits) > 0 and hits["narrative"].str.contains("cyclist", case=False).all()
    assert crashes.search(inc, "  ").empty
