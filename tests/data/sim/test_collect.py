"""Fleet logs from the embedded simulator: contract, determinism, takeovers, known densities."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

pytest.importorskip("highway_env")

from roadworthy.data.dataset import scan_logs
from roadworthy.data.errors import UsageError
from roadworthy.data.roads import read_roads, roads_path
from roadworthy.data.sim.collect import collect_highway
from roadworthy.data.sim.drivers import AUTOPILOT, driver_action
from roadworthy.data.sim.episodes import FleetConfig
from roadworthy.data.sim.features import IDX, OBS_NAMES, SENSOR_RANGE, time_to_collision
from roadworthy.data.sim.highway import HighwayConfig
from roadworthy.data.validate import validate_logs

SHORT = HighwayConfig(duration=6.0)


def test_sample_is_a_valid_log_with_every_column(sim_logs):
    s = validate_logs(sim_logs)
    assert s.episodes == 12
    assert s.metadata.obs_names == OBS_NAMES
    assert s.metadata.action_names == ("accel_mps2", "steer_rad")
    for col in ("collision", "off_road", "disengagement", "behavior_logp", "x", "y", "yaw", "speed", "map_name"):
        assert col in s.columns
    assert s.maps == {"highway-3lane": s.rows}
    assert set(s.rows_by_source) <= {"human", "autopilot"}
    roads = read_roads(roads_path(sim_logs, "highway-3lane"))
    assert roads.num_rows == 3 and set(roads.column("lane_type").to_pylist()) == {"driving"}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = collect_highway(tmp_path / "a", episodes=3, seed=11, workers=1, config=SHORT)
    b = collect_highway(tmp_path / "b", episodes=3, seed=11, workers=2, config=SHORT)
    c = collect_highway(tmp_path / "c", episodes=3, seed=12, workers=1, config=SHORT)
    assert a.files[0].read_bytes() == b.files[0].read_bytes()
    assert a.files[0].read_bytes() != c.files[0].read_bytes()


def test_refuses_non_empty_out_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        collect_highway(tmp_path / "out", episodes=1, config=SHORT, workers=1)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    collect_highway(tmp_path / "out", episodes=1, config=SHORT, workers=1, overwrite=True)
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert validate_logs(tmp_path / "out").episodes == 1


@pytest.fixture(scope="module")
def autopilot_logs(tmp_path_factory):
    """Autopilot-only episodes with a safety driver, 16 s each."""
    out = tmp_path_factory.mktemp("ap") / "logs"
    collect_highway(
        out, episodes=10, seed=5, workers=1, config=HighwayConfig(duration=16.0), fleet=FleetConfig(autopilot_share=1.0)
    )
    return scan_logs(out).read()


def test_takeovers_follow_risk_and_hand_back(autopilot_logs):
    t = autopilot_logs
    ep = np.array(t.column("episode_id").to_pylist())
    src = np.array(t.column("source").to_pylist())
    dis = t.column("disengagement").to_numpy(zero_copy_only=False)
    obs = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    step = t.column("step").to_numpy()
    assert dis.sum() >= 2, "a safety driver should take over at least twice in 10 autopilot episodes"
    # A takeover starts human control; the row before (same episode) was the autopilot's.
    for i in np.flatnonzero(dis):
        assert src[i] == "human"
        if step[i] > 0:
            assert src[i - 1] == "autopilot" and ep[i - 1] == ep[i]
    # Human rows inside autopilot episodes come only after a disengagement.
    for e in np.unique(ep):
        m = ep == e
        s, d = src[m], dis[m]
        first_human = np.flatnonzero(s == "human")
        if first_human.size:
            assert d[first_human[0]]
    # Most takeovers happen in risky moments (low time to collision or headway).
    ttc = time_to_collision(obs[dis])
    gap = obs[dis, IDX["lead_gap_m"]]
    headway = np.where(gap < SENSOR_RANGE - 1e-3, gap / np.maximum(obs[dis, IDX["speed_mps"]], 0.1), np.inf)
    risky = (ttc < 3.0) | (headway < 0.6)
    assert risky.mean() >= 0.5


def test_behavior_logp_is_the_autopilot_density(autopilot_logs):
    t = autopilot_logs
    src = np.array(t.column("source").to_pylist())
    logp = t.column("behavior_logp").to_numpy(zero_copy_only=False)
    ap = src == "autopilot"
    assert np.isfinite(logp[ap]).all() and np.isnan(logp[~ap]).all()
    obs = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)[ap]
    act = t.column("action").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)[ap]
    mean = np.clip(driver_action(np, AUTOPILOT, obs.astype(np.float64)), [-6, -0.25], [4, 0.25])
    std = np.array(FleetConfig().autopilot_noise)
    z = (act - mean) / std
    expected = (-0.5 * z**2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(axis=1)
    np.testing.assert_allclose(logp[ap], expected, atol=2e-3)
    # The residuals really are standard normal: the logged density is the true one.
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1


def test_poses_and_speed_are_physical(sim_logs):
    t = scan_logs(sim_logs).read()
    speed = t.column("speed").to_numpy()
    assert (speed >= 0).all() and (speed < 45).all()
    obs_speed = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)[:, 0]
    np.testing.assert_allclose(speed, obs_speed, atol=1e-4)
    y = t.column("y").to_numpy()
    assert (y > -4).all() and (y < 12).all()  # three 4 m lanes centred at 0, 4, 8
    assert pc.min(t.column("reward")).as_py() >= -101.5
