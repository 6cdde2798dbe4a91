"""The driver model: IDM properties, features, and ONNX policies equal to the numpy model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("highway_env")

from roadworthy.data.policy import OnnxPolicy
from roadworthy.data.sim.drivers import AUTOPILOT, driver_action, idm_accel
from roadworthy.data.sim.features import IDX, LANE_WIDTH, OBS_NAMES, SENSOR_RANGE
from roadworthy.data.sim.highway import HighwaySim
from roadworthy.data.sim.policies import EXAMPLES, example_policy_path, export_policy


def free_road(speed: float) -> np.ndarray:
    obs = np.zeros((1, len(OBS_NAMES)))
    obs[0, IDX["speed_mps"]] = speed
    obs[0, IDX["has_left_lane"]] = 1
    obs[0, IDX["has_right_lane"]] = 1
    for name in OBS_NAMES:
        if name.endswith("gap_m"):
            obs[0, IDX[name]] = SENSOR_RANGE
    return obs


def test_idm_accelerates_below_and_brakes_above_desired_speed():
    p = AUTOPILOT
    slow = idm_accel(np, p, np.array([15.0]), np.array([100.0]), np.array([0.0]), np.array([0.0]))
    fast = idm_accel(np, p, np.array([35.0]), np.array([100.0]), np.array([0.0]), np.array([0.0]))
    at = idm_accel(np, p, np.array([p.desired_speed]), np.array([100.0]), np.array([0.0]), np.array([0.0]))
    assert slow[0] > 0 > fast[0]
    assert at[0] == pytest.approx(0.0, abs=1e-9)


def test_closing_on_a_near_lead_brakes_hard():
    obs = free_road(25.0)
    obs[0, IDX["lead_gap_m"]] = 15.0
    obs[0, IDX["lead_rel_speed_mps"]] = -8.0
    obs[0, IDX["has_left_lane"]] = obs[0, IDX["has_right_lane"]] = 0
    accel, steer = driver_action(np, AUTOPILOT, obs)[0]
    assert accel < -4.0 and steer == pytest.approx(0.0)


def test_lane_keeping_steers_back_to_the_centre():
    obs = free_road(25.0)
    obs[0, IDX["lane_offset_m"]] = 1.0  # right of the centre
    assert driver_action(np, AUTOPILOT, obs)[0, 1] < 0  # steer left
    obs[0, IDX["lane_offset_m"]] = -1.0
    assert driver_action(np, AUTOPILOT, obs)[0, 1] > 0


def test_slow_lead_and_free_left_lane_makes_a_lane_change():
    obs = free_road(25.0)
    obs[0, IDX["lead_gap_m"]] = 30.0
    obs[0, IDX["lead_rel_speed_mps"]] = -6.0
    obs[0, IDX["has_right_lane"]] = 0
    assert driver_action(np, AUTOPILOT, obs)[0, 1] < -0.005  # heads left


@pytest.fixture(scope="module")
def visited_obs():
    sim = HighwaySim()
    out = []
    for seed in range(3):
        sim.reset(seed)
        for _ in range(60):
            o = sim.observe()
            out.append(o)
            if sim.step(driver_action(np, AUTOPILOT, o[None].astype(np.float64))[0]).terminal:
                break
    return np.array(out)


def test_features_are_consistent(visited_obs):
    o = visited_obs
    width = o[:, IDX["dist_left_edge_m"]] + o[:, IDX["dist_right_edge_m"]]
    np.testing.assert_allclose(width, 3 * LANE_WIDTH, atol=1e-4)
    assert (np.abs(o[:, IDX["lane_offset_m"]]) <= LANE_WIDTH / 2 + 1e-4).all()
    gaps = o[:, [i for n, i in IDX.items() if n.endswith("gap_m")]]
    assert (gaps <= SENSOR_RANGE).all()


@pytest.mark.parametrize("spec", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_shipped_onnx_policy_equals_the_driver_model(spec, visited_obs):
    policy = OnnxPolicy.load(example_policy_path(spec.name), obs_names=OBS_NAMES)
    mean, log_std = policy.distribution(visited_obs)
    ref = driver_action(np, spec.params, visited_obs.astype(np.float64))
    np.testing.assert_allclose(mean, ref, atol=2e-3, rtol=1e-3)
    assert (log_std is None) == (spec.std is None)
    if spec.std is not None:
        np.testing.assert_allclose(np.exp(log_std), np.broadcast_to(spec.std, log_std.shape), rtol=1e-5)


def test_export_round_trip(tmp_path, visited_obs):
    spec = EXAMPLES[1]
    path = export_policy(
        spec.module(), tmp_path / "p.onnx", name="mine", obs_names=OBS_NAMES, action_names=("accel_mps2", "steer_rad")
    )
    policy = OnnxPolicy.load(path)
    assert policy.name == "mine" and not policy.stochastic
    np.testing.assert_allclose(policy.act(visited_obs), driver_action(np, spec.params, visited_obs), atol=2e-3)
