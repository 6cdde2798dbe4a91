"""Planted out-of-support actions, for measuring how well flags catch them.

For the two feature layouts the project produces (the embedded highway simulator
and CARLA imports), three kinds of action no careful driver takes, each planted
only in states where it is clearly wrong and clearly different from the logged
action:

* ``swerve``: a hard steer toward the road edge / sidewalk;
* ``throttle_into_lead``: full acceleration with a vehicle close ahead;
* ``brake_on_free_road``: hard braking with nothing ahead at speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.carla import features as carla_features
from roadworthy.data.sim import features as sim_features

if TYPE_CHECKING:
    from collections.abc import Sequence

KINDS = ("swerve", "throttle_into_lead", "brake_on_free_road")


def plant(
    obs: np.ndarray, action: np.ndarray, obs_names: Sequence[str], *, seed: int = 0, per_kind: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planted (obs, action, kind) rows built from logged states.

    Parameters
    ----------
    obs, action : arrays of logged rows
    obs_names : sequence of str
        Selects the layout (highway simulator or CARLA import).
    per_kind : int
        Most rows per kind (a seeded sample).

    Returns
    -------
    obs (n, D), action (n, A), kind (n,) of str

    Raises
    ------
    ValueError
        For a feature layout with no planting rules.
    """
    names = tuple(obs_names)
    if names == sim_features.OBS_NAMES:
        rules = _highway(obs, action)
    elif names == carla_features.OBS_NAMES:
        rules = _carla(obs, action)
    else:
        raise ValueError("no planting rules for this feature layout (only the highway simulator and CARLA imports)")
    rng = np.random.default_rng(seed)
    out_o, out_a, out_k = [], [], []
    for kind, (mask, planted) in zip(KINDS, rules, strict=True):
        idx = np.flatnonzero(mask)
        if len(idx) > per_kind:
            idx = np.sort(rng.choice(idx, per_kind, replace=False))
        out_o.append(obs[idx])
        out_a.append(planted[idx])
        out_k.append(np.full(len(idx), kind, dtype=object))
    return np.concatenate(out_o), np.concatenate(out_a), np.concatenate(out_k)


def _highway(obs: np.ndarray, action: np.ndarray):
    ix = sim_features.IDX
    speed = obs[:, ix["speed_mps"]]
    lead = obs[:, ix["lead_gap_m"]]
    toward_right = obs[:, ix["dist_right_edge_m"]] < obs[:, ix["dist_left_edge_m"]]
    swerve = action.copy()
    swerve[:, 1] = np.where(toward_right, 0.2, -0.2)
    throttle = action.copy()
    throttle[:, 0] = 4.0
    brake = action.copy()
    brake[:, 0] = -6.0
    return (
        ((np.abs(action[:, 1]) < 0.05) & (speed > 10), swerve),
        ((lead < 20) & (speed > 5) & (action[:, 0] < 1.0), throttle),
        ((lead >= 60) & (speed > 15) & (action[:, 0] > -2.0), brake),
    )


def _carla(obs: np.ndarray, action: np.ndarray):
    ix = carla_features.IDX
    speed = obs[:, ix["speed_mps"]]
    dx, dy = obs[:, ix["actor0_dx_m"]], obs[:, ix["actor0_dy_m"]]
    lead_close = (dx > 0) & (dx < 15) & (np.abs(dy) < 2.5)
    free = ~((dx > 0) & (dx < 30) & (np.abs(dy) < 3.0))
    swerve = action.copy()
    swerve[:, 0] = 1.0  # full right, toward the sidewalk in right-hand traffic
    throttle = action.copy()
    throttle[:, 1], throttle[:, 2] = 1.0, 0.0
    brake = action.copy()
    brake[:, 1], brake[:, 2] = 0.0, 1.0
    return (
        ((speed > 2) & (action[:, 0] < 0.5), swerve),
        (lead_close & (action[:, 1] < 0.5), throttle),
        (free & (speed > 5) & (action[:, 2] < 0.5), brake),
    )
