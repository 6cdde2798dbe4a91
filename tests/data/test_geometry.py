"""The ego's pose against the road: lane queries, kinematics and declared pose features.

Ground truth: the embedded simulator (highway-env computes the same quantities its
own way: the features, its ``Vehicle.step``, its off-road rule) and, for maps with
curves, lane types and junctions, CARLA's own map layer on the shared Town files.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from roadworthy.data.errors import UsageError
from roadworthy.data.geometry import EgoGeometry, GeometrySpec, kinematics_from_metadata
from roadworthy.data.kinematics import Bicycle, fit_bicycle, residuals
from roadworthy.data.road_geometry import RoadGeometry
from roadworthy.data.roads import road_table
from tests.conftest import require_shared


def _straight_road(n_lanes: int = 3, width: float = 4.0, handed: str = "left"):
    lanes = []
    sign = 1.0 if handed == "left" else -1.0  # lane k lies to the right of lane k - 1
    for k in range(n_lanes):
        y = sign * k * width
        lanes.append(
            {
                "road_id": "0-1",
                "lane_id": k,
                "lane_type": "driving",
                "centre": [[0.0, y], [500.0, y]],
                "left": [[0.0, y - sign * width / 2], [500.0, y - sign * width / 2]],
                "right": [[0.0, y + sign * width / 2], [500.0, y + sign * width / 2]],
            }
        )
    return RoadGeometry.from_table(road_table("straight", lanes), name="straight", handedness=handed)


@pytest.mark.parametrize("handed", ["left", "right"])
def test_straight_road_offsets_edges_and_off_road(handed):
    g = _straight_road(handed=handed)
    sign = 1.0 if handed == "left" else -1.0
    lateral = np.array([-2.5, -1.9, 0.0, 1.0, 5.5, 9.9, 10.3])  # m to the right of lane 0's centre
    q = g.query(np.full(len(lateral), 200.0), sign * lateral, np.zeros(len(lateral)))
    np.testing.assert_array_equal(q.lane, [0, 0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(q.offset, [-2.5, -1.9, 0.0, 1.0, 1.5, 1.9, 2.3], atol=1e-9)
    np.testing.assert_allclose(q.left_edge, lateral + 2.0, atol=1e-9)
    np.testing.assert_allclose(q.right_edge, 10.0 - lateral, atol=1e-9)
    np.testing.assert_array_equal(q.drivable, [False, True, True, True, True, True, False])
    np.testing.assert_array_equal(q.lanes_left, [0, 0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(q.lanes_right, [2, 2, 2, 2, 1, 0, 0])


def test_sidewalk_is_not_drivable_and_opposite_lanes_bound_the_band():
    lanes = [
        {"road_id": "r", "lane_id": -1, "lane_type": "driving", "centre": [[0, 2], [100, 2]],
         "left": [[0, 0], [100, 0]], "right": [[0, 4], [100, 4]]},
        {"road_id": "r", "lane_id": 1, "lane_type": "driving", "centre": [[100, -2], [0, -2]],
         "left": [[100, 0], [0, 0]], "right": [[100, -4], [0, -4]]},
        {"road_id": "r", "lane_id": -2, "lane_type": "sidewalk", "centre": [[0, 5], [100, 5]],
         "left": [[0, 4], [100, 4]], "right": [[0, 6], [100, 6]]},
    ]  # fmt: skip
    g = RoadGeometry.from_table(road_table("two-way", lanes), handedness="left")
    q = g.query(np.array([50.0, 50.0, 50.0]), np.array([2.0, 5.0, -1.0]), np.zeros(3))
    np.testing.assert_array_equal(q.drivable, [True, False, True])
    assert list(q.lane_type) == ["driving", "sidewalk", "driving"]
    # The band of the eastbound lane ends at the centre line: the westbound lane is not in it.
    np.testing.assert_allclose(q.left_edge[[0, 1]], [2.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(q.right_edge[[0, 1]], [2.0, -1.0], atol=1e-9)
    # Eastbound at y = -1 is in the westbound lane: matched to it, heading against it.
    assert q.drivable[2] and abs(q.heading_error[2]) > np.pi / 2


def test_declared_bicycle_is_highway_env_exactly():
    pytest.importorskip("highway_env")
    from roadworthy.data.sim.collect import KINEMATICS
    from roadworthy.data.sim.features import ACTION_NAMES
    from roadworthy.data.sim.highway import HighwaySim

    sim = HighwaySim()
    sim.reset(3)
    bike = Bicycle.from_metadata(KINEMATICS, ACTION_NAMES)
    rng = np.random.default_rng(0)
    poses, acts = [], []
    for _ in range(40):
        poses.append(sim.pose())
        a = np.array([rng.uniform(-6, 4), rng.uniform(-0.05, 0.05)])
        acts.append(a)
        if sim.step(a).terminal:
            break
    poses, acts = np.array(poses), np.array(acts)
    pred = bike.step(poses[:-1], acts[:-1], sim.config.dt)
    np.testing.assert_allclose(pred, poses[1:], atol=1e-9)


def test_fitted_bicycle_recovers_a_known_car():
    true = Bicycle(wheelbase=2.9, rear=2.9, accel=(0.2, 0.0, 3.0, -5.0), steer=(0.0, 0.5, 0.0, 0.0), drag=-0.01)
    rng = np.random.default_rng(1)
    pose = np.array([[0.0, 0.0, 0.3, 8.0]])
    rows, acts = [], []
    for _ in range(300):
        a = np.array([[rng.uniform(-0.3, 0.3), rng.uniform(0, 1), rng.uniform(0, 0.3)]])
        rows.append(pose[0])
        acts.append(a[0])
        pose = true.step(pose, a, 0.05)
    pose, act = np.array(rows), np.array(acts)
    has_next = np.ones(len(pose), dtype=bool)
    has_next[-1] = False
    fit = fit_bicycle(pose, act, has_next, 0.05, wheelbase=2.9)
    err = residuals(fit, pose, act, has_next, 0.05)
    assert err["pairs"] == len(pose) - 1
    assert err["position_m"] < 0.01 and err["heading_rad"] < 1e-3 and err["speed_mps"] < 1e-6
    np.testing.assert_allclose(fit.accel, true.accel, atol=1e-6)


def test_bad_declarations_are_usage_errors():
    with pytest.raises(UsageError, match="not an action entry"):
        Bicycle.from_metadata({"model": "bicycle", "wheelbase_m": 3, "rear_m": 1.5, "accel": "a", "steer": "s"}, ["x"])
    with pytest.raises(UsageError, match="unknown model"):
        kinematics_from_metadata({"kinematics": json.dumps({"model": "unicycle"})}, ["a"])
    with pytest.raises(UsageError, match="not valid JSON"):
        GeometrySpec.from_metadata({"geometry": "{"}, ["f0"])
    with pytest.raises(UsageError, match="not an obs entry"):
        GeometrySpec.from_metadata({"geometry": json.dumps({"features": {"speed": "nope"}})}, ["f0"])
    with pytest.raises(UsageError, match="unknown feature kind"):
        GeometrySpec.from_metadata({"geometry": json.dumps({"features": {"yaw_rate": "f0"}})}, ["f0"])
    assert GeometrySpec.from_metadata({}, ["f0"]).columns == []


def _sim_arrays(logs):
    t = pq.read_table(sorted(logs.glob("*.parquet")))
    pose = np.column_stack([t[c].to_numpy() for c in ("x", "y", "yaw", "speed")]).astype(np.float64)
    obs = np.stack(t["obs"].to_numpy(zero_copy_only=False)).astype(np.float64)
    act = np.stack(t["action"].to_numpy(zero_copy_only=False)).astype(np.float64)
    return t, pose, obs, act, ~t["done"].to_numpy(), t["map_name"].to_numpy(zero_copy_only=False)


def test_pose_features_and_off_road_match_the_simulator(sim_logs):
    from roadworthy.data.dataset import scan_logs

    t, pose, obs, act, has_next, maps = _sim_arrays(sim_logs)
    meta = scan_logs(sim_logs).metadata
    geo, why = EgoGeometry.for_log(
        sim_logs, meta.extra, meta.obs_names, meta.action_names,
        pose=pose, action=act, has_next=has_next, map_name=maps, dt=meta.dt,
    )  # fmt: skip
    assert geo is not None, why
    assert geo.kinematics.source == "declared" and geo.fit["position_m"] < 1e-3
    idx = geo.map_index(maps)
    values, _ = geo.observe(pose, idx)
    assert len(values) == 7
    for col, v in values.items():
        np.testing.assert_allclose(v, obs[:, col], atol=1e-4, err_msg=meta.obs_names[col])
    # One kinematic step from each logged pose gives the next row's features.
    nxt = geo.step(pose, act)
    values, q = geo.observe(nxt, idx)
    rows = np.flatnonzero(has_next)
    for col, v in values.items():
        np.testing.assert_allclose(v[rows], obs[rows + 1, col], atol=1e-3, err_msg=meta.obs_names[col])
    # ... and off the road exactly where the simulator said so.
    off = geo.events(nxt, q)["off_road"]
    np.testing.assert_array_equal(off[~has_next], t["off_road"].to_numpy()[~has_next])


def test_geometry_says_why_it_is_missing(sim_logs, tmp_path):
    from roadworthy.data.dataset import scan_logs

    _, pose, _, act, has_next, maps = _sim_arrays(sim_logs)
    meta = scan_logs(sim_logs).metadata
    kw = {"action": act, "has_next": has_next, "map_name": maps, "dt": meta.dt}
    geo, why = EgoGeometry.for_log(tmp_path, meta.extra, meta.obs_names, meta.action_names, pose=pose, **kw)
    assert geo is None and "no road geometry of map 'highway-3lane'" in why
    nan_pose = pose.copy()
    nan_pose[:, 2] = np.nan
    geo, why = EgoGeometry.for_log(sim_logs, meta.extra, meta.obs_names, meta.action_names, pose=nan_pose, **kw)
    assert geo is None and "pose" in why


def test_town_lanes_agree_with_carla(shared_dir):
    """The map layer written beside a CARLA import, queried here, against carla.Map's own answers."""
    pytest.importorskip("carla")
    from roadworthy.data.carla.opendrive import MapLayer

    layer = MapLayer.from_xodr(require_shared(shared_dir / "data" / "carla" / "maps" / "Town01.xodr"))
    geo = RoadGeometry.from_table(layer.road_table(), name="Town01", handedness="left")
    rng = np.random.default_rng(2)
    # Points near driving-lane samples, headed along the lane.
    drv = np.flatnonzero(np.array([lane["lane_type"] == "driving" for lane in layer.lanes]))
    picks = rng.choice(len(layer.x_), 3000)
    picks = picks[np.isin(layer.lane_[picks], drv)][:1000]
    x = layer.x_[picks] + rng.normal(0, 0.8, len(picks))
    y = layer.y_[picks] + rng.normal(0, 0.8, len(picks))
    yaw = layer.yaw_[picks] + rng.normal(0, 0.1, len(picks))
    ours = geo.query(x, y, yaw)
    theirs = layer.query(x, y, yaw)
    agree = ours.drivable == theirs["drivable"]
    assert agree.mean() > 0.97
    both = ours.drivable & theirs["drivable"]
    assert np.median(np.abs(ours.offset[both] - theirs["offset"][both])) < 0.05
    assert np.median(np.abs(ours.heading_error[both] - theirs["heading_error"][both])) < 0.02
