"""Observation features of the embedded highway simulator.

The feature vector is what both the logged drivers and candidate policies see. It
is built from the highway-env road state with the ego lane as reference; every
entry has a physical unit. Absent neighbours (none within ``SENSOR_RANGE``) read as
a gap of ``SENSOR_RANGE`` metres and a relative speed of 0 m/s, the way a range
sensor reports free space.

Frame: highway-env's x axis points along the road and its y axis to the *right* of
the direction of travel (lane 0 is the leftmost lane), so the frame is left-handed,
like CARLA's. Lateral quantities are positive to the right; a positive heading
error or steering angle turns right.
"""

from __future__ import annotations

import numpy as np

SENSOR_RANGE = 100.0  # m
LANE_WIDTH = 4.0  # m, highway-env's StraightLane.DEFAULT_WIDTH
VEHICLE_LENGTH = 5.0  # m, highway-env's Vehicle.LENGTH
VEHICLE_WIDTH = 2.0  # m, highway-env's Vehicle.WIDTH
#: A vehicle counts as in a lane when its centre is within half a lane width plus
#: this margin of the lane centre, so a car half-way through a lane change shows
#: up in both lanes (highway-env's IDM uses the same margin).
LANE_MARGIN = 1.0  # m

_SLOTS = ("lead", "follow", "left_lead", "left_follow", "right_lead", "right_follow")

OBS_NAMES: tuple[str, ...] = (
    "speed_mps",
    "lane_offset_m",
    "heading_error_rad",
    "dist_left_edge_m",
    "dist_right_edge_m",
    "has_left_lane",
    "has_right_lane",
    *tuple(f"{slot}_{kind}" for slot in _SLOTS for kind in ("gap_m", "rel_speed_mps")),
)

ACTION_NAMES: tuple[str, ...] = ("accel_mps2", "steer_rad")

#: Column index of every feature, e.g. ``IDX["lead_gap_m"]``.
IDX: dict[str, int] = {name: i for i, name in enumerate(OBS_NAMES)}


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def observe(road, ego) -> np.ndarray:
    """Feature vector of ``ego`` on ``road`` (highway-env objects).

    Parameters
    ----------
    road : highway_env.road.road.Road
        The road, with ``road.vehicles`` including ``ego``.
    ego : highway_env.vehicle.kinematics.Vehicle
        The controlled vehicle.

    Returns
    -------
    numpy.ndarray of shape (len(OBS_NAMES),), float32
    """
    _from, _to, idx = ego.lane_index
    lanes = road.network.graph[_from][_to]
    n_lanes = len(lanes)
    lane = lanes[idx]
    s_ego, r_ego = lane.local_coordinates(ego.position)
    heading_error = _wrap(ego.heading - lane.heading_at(s_ego))
    v_ego = float(ego.speed)
    vx_ego = v_ego * np.cos(heading_error)

    out = np.empty(len(OBS_NAMES), dtype=np.float64)
    out[0] = v_ego
    out[1] = r_ego
    out[2] = heading_error
    _, r_first = lanes[0].local_coordinates(ego.position)
    _, r_last = lanes[-1].local_coordinates(ego.position)
    out[3] = r_first + lanes[0].width_at(s_ego) / 2
    out[4] = lanes[-1].width_at(s_ego) / 2 - r_last
    out[5] = float(idx > 0)
    out[6] = float(idx < n_lanes - 1)

    others = [v for v in road.vehicles if v is not ego]
    for j, k in enumerate((idx, idx - 1, idx + 1)):
        lead_gap, lead_rel, follow_gap, follow_rel = SENSOR_RANGE, 0.0, SENSOR_RANGE, 0.0
        if 0 <= k < n_lanes:
            lane_k = lanes[k]
            half = lane_k.width_at(s_ego) / 2 + LANE_MARGIN
            for v in others:
                s, r = lane_k.local_coordinates(v.position)
                if abs(r) > half:
                    continue
                ds = s - s_ego
                if abs(ds) > SENSOR_RANGE + VEHICLE_LENGTH:
                    continue
                vx = v.speed * np.cos(_wrap(v.heading - lane_k.heading_at(s)))
                if ds >= 0:
                    gap = ds - VEHICLE_LENGTH
                    if gap < lead_gap:
                        lead_gap, lead_rel = gap, vx - vx_ego
                else:
                    gap = -ds - VEHICLE_LENGTH
                    if gap < follow_gap:
                        follow_gap, follow_rel = gap, vx - vx_ego
        base = 7 + 4 * j
        out[base : base + 4] = (
            min(lead_gap, SENSOR_RANGE),
            lead_rel,
            min(follow_gap, SENSOR_RANGE),
            follow_rel,
        )
    return out.astype(np.float32)


def time_to_collision(obs: np.ndarray) -> np.ndarray:
    """Time to collision with the lead vehicle, seconds (inf when not closing).

    Parameters
    ----------
    obs : numpy.ndarray of shape (..., len(OBS_NAMES))
    """
    gap = obs[..., IDX["lead_gap_m"]]
    closing = -obs[..., IDX["lead_rel_speed_mps"]]
    present = gap < SENSOR_RANGE - 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        ttc = np.where(present & (closing > 1e-3), np.maximum(gap, 0.0) / closing, np.inf)
    return ttc
