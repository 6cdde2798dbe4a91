"""Observation features of a CARLA hero vehicle, shared by the replay import and the live collector.

Both paths first describe a run of frames as a :class:`FrameBatch` (plain arrays:
the hero's pose, velocity and control, the other actors, the traffic lights, the
collisions), then call :func:`compute_features`. A live run and a replay of its
recording therefore produce the same rows.

Frame: CARLA's left-handed frame (x east, y south, z up), metres, radians. In the
ego frame ``dx`` is forward and ``dy`` to the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roadworthy.data.carla.opendrive import LANE_TYPES, MapLayer

N_ACTORS = 4
ACTOR_RANGE = 50.0  # m, farther actors read as absent
TL_RANGE = 40.0  # m, traffic lights farther ahead are ignored
TL_LATERAL = 15.0  # m, how far to the side a light ahead may stand
V_REF = 10.0  # m/s, speed at which progress reward is 1 per second
COMFORT_WEIGHT = 0.01  # per (m/s^2)^2 per second
COLLISION_PENALTY = 50.0
OFF_ROAD_PENALTY = 50.0

_LANE_ONEHOT = ("driving", "sidewalk", "shoulder", "parking")

OBS_NAMES: tuple[str, ...] = (
    "speed_mps",
    "accel_mps2",
    "lane_offset_m",
    "heading_error_rad",
    *(f"lane_{t}" for t in _LANE_ONEHOT),
    "lane_other_or_none",
    "dist_to_junction_m",
    *(f"actor{k}_{q}" for k in range(N_ACTORS) for q in ("dx_m", "dy_m", "dvx_mps", "dvy_mps")),
    "tl_distance_m",
    "tl_red",
    "tl_yellow",
    "tl_green",
)
ACTION_NAMES: tuple[str, ...] = ("steer", "throttle", "brake")
ACTION_LOW: tuple[float, ...] = (-1.0, 0.0, 0.0)
ACTION_HIGH: tuple[float, ...] = (1.0, 1.0, 1.0)
IDX = {n: i for i, n in enumerate(OBS_NAMES)}

#: Traffic light state codes (carla.TrafficLightState order).
TL_RED, TL_YELLOW, TL_GREEN = 0, 1, 2


@dataclass
class FrameBatch:
    """A run of consecutive frames seen from the hero.

    Attributes
    ----------
    t : (T,) float, s
    x, y, yaw : (T,) float, m and rad
    vx, vy : (T,) float, m/s, world frame
    control : (T, 3) float, steer / throttle / brake
    collision : (T,) bool, the hero collided during the frame
    others : dict of arrays
        One row per (frame, actor): ``frame`` (0..T-1), ``x``, ``y``, ``vx``, ``vy``.
    lights : dict of arrays
        One row per (frame, light): ``frame``, ``x``, ``y``, ``state`` (0 red, 1 yellow, 2 green, 3 off).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    control: np.ndarray
    collision: np.ndarray
    others: dict[str, np.ndarray]
    lights: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.t)


def _ego(dx: np.ndarray, dy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World offsets to the ego frame: forward, right."""
    c, s = np.cos(yaw), np.sin(yaw)
    return c * dx + s * dy, -s * dx + c * dy


def _nearest_actors(batch: FrameBatch) -> np.ndarray:
    t = len(batch)
    out = np.zeros((t, N_ACTORS, 4))
    out[:, :, 0] = ACTOR_RANGE
    o = batch.others
    if len(o.get("frame", [])) == 0:
        return out.reshape(t, -1)
    f = o["frame"].astype(np.int64)
    dx, dy = o["x"] - batch.x[f], o["y"] - batch.y[f]
    dist = np.hypot(dx, dy)
    keep = dist <= ACTOR_RANGE
    f, dx, dy, dist = f[keep], dx[keep], dy[keep], dist[keep]
    dvx, dvy = o["vx"][keep] - batch.vx[f], o["vy"][keep] - batch.vy[f]
    order = np.lexsort((dist, f))
    f, dx, dy, dvx, dvy = f[order], dx[order], dy[order], dvx[order], dvy[order]
    rank = np.arange(len(f)) - np.searchsorted(f, f, side="left")
    sel = rank < N_ACTORS
    f, rank = f[sel], rank[sel]
    yaw = batch.yaw[f]
    fx, fy = _ego(dx[sel], dy[sel], yaw)
    vx, vy = _ego(dvx[sel], dvy[sel], yaw)
    out[f, rank] = np.stack([fx, fy, vx, vy], axis=1)
    return out.reshape(t, -1)


def _light_ahead(batch: FrameBatch) -> np.ndarray:
    t = len(batch)
    out = np.zeros((t, 4))
    out[:, 0] = TL_RANGE
    lt = batch.lights
    if len(lt.get("frame", [])) == 0:
        return out
    f = lt["frame"].astype(np.int64)
    fwd, lat = _ego(lt["x"] - batch.x[f], lt["y"] - batch.y[f], batch.yaw[f])
    ok = (fwd > 0) & (fwd <= TL_RANGE) & (np.abs(lat) <= TL_LATERAL)
    f, fwd, state = f[ok], fwd[ok], lt["state"][ok].astype(np.int64)
    order = np.lexsort((fwd, f))
    f, fwd, state = f[order], fwd[order], state[order]
    first = np.r_[True, f[1:] != f[:-1]] if len(f) else np.zeros(0, bool)
    f, fwd, state = f[first], fwd[first], state[first]
    out[f, 0] = fwd
    for col, code in ((1, TL_RED), (2, TL_YELLOW), (3, TL_GREEN)):
        out[f, col] = state == code
    return out


def compute_features(batch: FrameBatch, layer: MapLayer) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Observation rows and per-frame map facts for a run of frames.

    Returns
    -------
    obs : (T, len(OBS_NAMES)) float32
    aux : dict
        ``speed`` (m/s), ``accel`` (m/s^2), ``off_road`` (bool), ``lane_type``,
        ``heading_error`` (rad), ``offset`` (m).
    """
    t = len(batch)
    speed = np.hypot(batch.vx, batch.vy)
    accel = np.zeros(t)
    if t > 1:
        dt = np.diff(batch.t)
        accel[1:] = np.diff(speed) / np.where(dt > 1e-6, dt, np.inf)
    q = layer.query(batch.x, batch.y, batch.yaw)
    lane = np.zeros((t, len(_LANE_ONEHOT) + 1))
    for i, name in enumerate(_LANE_ONEHOT):
        lane[:, i] = q["lane_code"] == LANE_TYPES.index(name)
    lane[:, -1] = lane[:, :-1].sum(axis=1) == 0
    obs = np.column_stack(
        [
            speed,
            accel,
            q["offset"],
            q["heading_error"],
            lane,
            q["dist_to_junction"],
            _nearest_actors(batch),
            _light_ahead(batch),
        ]
    ).astype(np.float32)
    aux = {
        "speed": speed,
        "accel": accel,
        "off_road": ~q["drivable"],
        "lane_type": q["lane_type"],
        "heading_error": q["heading_error"],
        "offset": q["offset"],
    }
    return obs, aux


def reward(batch: FrameBatch, aux: dict[str, np.ndarray]) -> np.ndarray:
    """Per-frame reward: progress along the lane minus discomfort, per second of the
    frame, minus a penalty on the first frame of a collision or of leaving the road.

    ``dt * (speed * cos(heading_error) / 10 - 0.01 * accel^2) - 50 * new_collision
    - 50 * new_off_road``, with dt the frame's duration (s).
    """
    t = len(batch)
    dt = np.zeros(t)
    if t > 1:
        dt[:-1] = np.diff(batch.t)
        dt[-1] = dt[-2]
    herr = np.nan_to_num(aux["heading_error"])
    progress = aux["speed"] * np.cos(herr) / V_REF - COMFORT_WEIGHT * aux["accel"] ** 2
    onset = np.r_[batch.collision[:1], batch.collision[1:] & ~batch.collision[:-1]]
    off = aux["off_road"]
    off_onset = np.r_[off[:1], off[1:] & ~off[:-1]]
    return dt * progress - COLLISION_PENALTY * onset - OFF_ROAD_PENALTY * off_onset
