"""The simulated world: computed pose, computed dangers, and what is left to learn.

Ground truth is the embedded simulator itself: its kinematics, its off-road rule and
closed-loop rollouts of drifting policies from the same starting traffic as the log.
"""

from __future__ import annotations

import numpy as np
import pytest

from roadworthy.evaluator.bootstrap import episode_bootstrap
from roadworthy.evaluator.logdata import load_eval_data
from roadworthy.evaluator.model_based import ModelConfig
from roadworthy.evaluator.model_eval import fit_driving_model
from roadworthy.evaluator.world import World

SMALL = ModelConfig(heads=2, steps=150, hidden=(32, 32), batch_size=256)


@pytest.fixture(scope="module")
def world(sim_logs):
    data = load_eval_data(sim_logs)
    w = episode_bootstrap(np.random.default_rng(0), SMALL.heads, data.n_episodes)
    model = fit_driving_model(data, SMALL, w, ("collision", "off_road"), seed=0)
    return data, World(model, data)


def test_channels_say_what_is_computed_and_what_is_learned(world):
    _, w = world
    kinds = {c.name: c.kind for c in w.channels}
    assert kinds["off_road"] == "computed"
    assert kinds["lane_departure"] == "computed"
    assert kinds["collision"] == "computed"
    assert kinds["ttc"] == kinds["headway"] == "computed"
    assert kinds["disengagement"] == "learned"
    desc = w.describe()
    assert desc["geometry"]["kinematics"]["source"] == "declared"
    assert "lane_offset_m" in desc["geometry"]["computed_features"]
    assert "lead_gap_m" not in desc["geometry"]["computed_features"]


def test_the_pose_follows_the_action_and_the_road_ends_the_episode(world):
    """Steer right at a constant angle from a logged start: the computed features track the
    kinematic pose exactly, and the step whose pose leaves the road ends the episode with
    an off-road event, in every member alike."""
    data, w = world
    rows = data.starts[:4]
    st = w.start(rows, w.model.heads)
    geo = data.geometry
    pose = data.pose[rows].copy()
    off_col = [c.name for c in w.channels].index("off_road")
    seen_off = np.zeros(len(rows), dtype=bool)
    for t in range(60):
        a = np.tile([0.0, 0.01], (len(rows), 1))
        rng = np.random.default_rng(t)
        st, _, p_end, cost = w.step(
            st, np.broadcast_to(a, (w.model.heads, *a.shape)), rng.uniform(size=st.obs.shape),
            rng.standard_normal(st.obs.shape),
        )  # fmt: skip
        pose = geo.step(pose, a)
        feats, q = geo.observe(pose, np.zeros(len(rows), dtype=np.int64))
        for col, v in feats.items():
            np.testing.assert_allclose(st.obs[:, :, col], np.broadcast_to(v, st.obs.shape[:2]), atol=1e-9)
        off = geo.events(pose, q)["off_road"]
        on = ~seen_off  # until its departure; the world does not stop a trajectory, the rollout does
        np.testing.assert_array_equal(cost[:, on, off_col] >= 1.0, np.broadcast_to(off[on], (w.model.heads, on.sum())))
        assert (p_end[:, off] == 1.0).all()
        seen_off |= off
    assert seen_off.all()  # 0.01 rad of steering leaves a 12 m road within 12 s


def test_learned_events_leave_out_what_the_rules_explain(world):
    from roadworthy.evaluator.world import explained_events

    data, w = world
    explained = explained_events(data, ("collision", "off_road"))
    off = data.costs[:, data.cost_names.index("off_road")] > 0
    assert explained["off_road"][off].all()  # every logged road departure follows from pose and map
    # Rule-computed crash channels are not learned at all: no fleet crash rate to charge.
    assert "off_road" not in w.model.learned and "collision" not in w.model.learned


def test_without_a_map_the_crash_channels_are_learned_and_say_from_how_many_events(sim_logs, tmp_path):
    import shutil

    logs = tmp_path / "no-map"
    shutil.copytree(sim_logs, logs, ignore=shutil.ignore_patterns("_maps"))
    data = load_eval_data(logs)
    assert data.geometry is None and "no road geometry of map 'highway-3lane'" in data.geometry_reason
    assert "lane_departure" not in data.cost_names
    w = episode_bootstrap(np.random.default_rng(0), SMALL.heads, data.n_episodes)
    world = World(fit_driving_model(data, SMALL, w, ("collision", "off_road"), seed=0), data)
    off = next(c for c in world.channels if c.name == "off_road")
    assert off.kind == "learned" and f"learned from {off.events} logged event(s)" in off.how
    assert "no road geometry" in off.how
    # Contacts need no map: the collision channel stays computed.
    assert next(c for c in world.channels if c.name == "collision").kind == "computed"
    assert world.describe()["geometry"] == {"available": False, "reason": data.geometry_reason}


def test_a_kinematic_lane_change_hands_the_ego_the_vehicles_of_its_new_lane(world):
    """``lane_change="kinematic"`` (an option; the default keeps the learned draws, see
    World._follow_lane_change): at a logged lane change, replayed with the logged action, the
    ego's new slots hold the vehicles that were in those places a step before, each moved on by
    its own speed; the lane beyond, which nobody saw, starts empty."""
    data, learned = world
    assert learned.lane_change == "learned"
    w = World(learned.model, data, lane_change="kinematic")
    names = list(data.obs_names)
    col = {n: names.index(n) for n in names}
    off = data.obs[:, col["lane_offset_m"]]
    nxt_off = data.next_obs[:, col["lane_offset_m"]]
    crossing = np.flatnonzero(data.has_next & (np.abs(nxt_off - off) > 2.0))
    assert len(crossing), "the fixture has no logged lane change"
    checked = compared = 0
    for row in crossing[:20]:
        st = w.start(np.array([row]), w.model.heads)
        prev = st.obs.copy()
        act = np.broadcast_to(data.action[row], (w.model.heads, 1, data.action.shape[1]))
        rng = np.random.default_rng(int(row))
        nst, *_ = w.step(st, act, rng.uniform(size=st.obs.shape), rng.standard_normal(st.obs.shape))
        if np.all(nst.road.lane == st.road.lane):
            continue  # the kinematic replay stayed in its lane this step
        to_left = nst.obs[0, 0, col["lane_offset_m"]] < prev[0, 0, col["lane_offset_m"]] - 2.0
        side, other = ("left", "right") if not to_left else ("right", "left")
        dt, dv = data.dt, nst.obs[..., col["speed_mps"]] - prev[..., col["speed_mps"]]
        for slot, src in (("lead", f"{side}_lead"), (f"{other}_lead", "lead")):
            g0, r0 = prev[..., col[f"{src}_gap_m"]], prev[..., col[f"{src}_rel_speed_mps"]]
            g1, r1 = nst.obs[..., col[f"{slot}_gap_m"]], nst.obs[..., col[f"{slot}_rel_speed_mps"]]
            present = g0 < 99.9
            compared += int(present.sum())
            np.testing.assert_allclose(r1[present], (r0 - dv)[present], atol=1e-9)
            np.testing.assert_allclose(g1[present], (g0 + dt * (r0 + r1) / 2)[present], atol=1e-9)
            assert (g1[~present] >= 99.9).all()
        assert (nst.obs[..., col[f"{side}_lead_gap_m"]] >= 99.9).all()  # the lane beyond: unseen, empty
        checked += 1
    assert checked and compared, "no replayed lane change crossed the lane line beside a vehicle"
