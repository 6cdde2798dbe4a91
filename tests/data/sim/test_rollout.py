"""Closed-loop rollouts: the autopilot clone reproduces the logged autopilot's returns."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("highway_env")

from roadworthy.data.errors import PolicyError, UsageError
from roadworthy.data.sim.collect import collect_highway
from roadworthy.data.sim.episodes import FleetConfig
from roadworthy.data.sim.highway import HighwayConfig
from roadworthy.data.sim.policies import example_policy_path
from roadworthy.data.sim.rollout import rollout_highway
from roadworthy.data.transitions import iter_episodes

CONFIG = HighwayConfig(duration=20.0)
N, SEED, GAMMA = 14, 21, 0.99


def test_autopilot_clone_matches_the_logged_autopilot(tmp_path):
    """Same seed, same starting traffic: the noise-free clone's returns sit within
    a few standard errors of the logged autopilot's (with its takeovers)."""
    logs = tmp_path / "logs"
    collect_highway(logs, episodes=N, seed=SEED, workers=1, config=CONFIG, fleet=FleetConfig(autopilot_share=1.0))
    logged = {e.episode_id: e.discounted_return(GAMMA) for e in iter_episodes(logs)}
    logged_returns = np.array([logged[f"hw-s{SEED}-e{i:06d}"] for i in range(N)])
    report = rollout_highway(
        [example_policy_path("autopilot-clone")], episodes=N, gamma=GAMMA, seed=SEED, config=CONFIG, workers=1
    )
    clone = np.array(report["policies"][0]["returns"])
    diff = clone - logged_returns
    se = diff.std(ddof=1) / np.sqrt(N)
    assert abs(diff.mean()) <= max(3 * se, 0.03 * abs(logged_returns.mean())), (diff.mean(), se)
    assert report["policies"][0]["value"]["estimate"] == pytest.approx(clone.mean())


def test_unsafe_policy_is_worse_and_leaves_the_road(tmp_path):
    report = rollout_highway(
        [example_policy_path("autopilot-clone"), example_policy_path("swerve")],
        episodes=6,
        seed=3,
        config=HighwayConfig(duration=12.0),
        workers=2,
        out=tmp_path / "ro",
    )
    safe, swerve = report["policies"]
    assert swerve["value"]["estimate"] < safe["value"]["estimate"]
    assert swerve["costs"]["off_road"]["estimate"] > 0 and safe["costs"]["off_road"]["estimate"] == 0
    episodes = list(iter_episodes(tmp_path / "ro"))
    assert len(episodes) == 12
    assert {e.table.column("source")[0].as_py() for e in episodes} == {"autopilot-clone", "swerve"}


def test_rollout_refuses_a_policy_for_other_features(tmp_path):
    from roadworthy.data.sim.policies import EXAMPLES, export_policy

    path = export_policy(
        EXAMPLES[0].module(),
        tmp_path / "w.onnx",
        name="w",
        obs_names=[f"x{i}" for i in range(19)],
        action_names=["a", "s"],
    )
    with pytest.raises(PolicyError, match="different observation features"):
        rollout_highway([path], episodes=1)


@pytest.mark.parametrize("kw", [{"episodes": 0}, {"episodes": 1, "gamma": 1.5}])
def test_rollout_option_errors(kw):
    with pytest.raises(UsageError):
        rollout_highway([example_policy_path("cautious")], **kw)
