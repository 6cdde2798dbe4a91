"""Road geometry and nearby actors for drawing, in a right-handed drawing frame.

Both the embedded simulator and CARLA log poses in left-handed frames (y to the
right of travel; CARLA: x east, y south). Drawn as is on a y-up canvas, every map
would appear mirrored, so drawings flip y (``draw_y = -y``) and the pages say so.

Nearby actors come from the features, which is all a log holds about them:
CARLA imports carry ``actor<k>_dx_m``/``actor<k>_dy_m`` (ego frame: forward,
right); the embedded simulator carries gaps to the lead and follower in the ego's
lane and the lanes beside it (``lead_gap_m``, ``left_follow_gap_m``, ...), placed
one lane width to the side. Logs with other features draw the ego alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from roadworthy.data.roads import MAPS_DIR, read_roads
from roadworthy.data.sim.features import SENSOR_RANGE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

LANE_WIDTH = 4.0  # m, lateral offset of side-lane actors in the simulator's layout
VEHICLE_LENGTH = 5.0  # m, bumper-to-bumper gaps become centre-to-centre distances
SENSOR_RANGE_SLACK = 1e-3
_CARLA_ACTOR = re.compile(r"^actor(\d+)_(dx|dy)_m$")
_SIM_SLOTS = {
    "lead": (1.0, 0.0),
    "follow": (-1.0, 0.0),
    "left_lead": (1.0, -1.0),
    "left_follow": (-1.0, -1.0),
    "right_lead": (1.0, 1.0),
    "right_follow": (-1.0, 1.0),
}


def flip(y: ArrayLike) -> np.ndarray:
    """Left-handed map y to the drawing's y (up)."""
    return -np.asarray(y, dtype=float)


def available_maps(logs: str | Path) -> list[str]:
    """Maps whose geometry the dataset keeps in ``_maps/``."""
    root = Path(logs)
    folder = (root if root.is_dir() else root.parent) / MAPS_DIR
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def load_roads(logs: str | Path, map_name: str) -> pd.DataFrame | None:
    """Lane polylines of a map (one row per lane), or None when the dataset has none.

    Columns ``lane_type``, ``road_id``, ``lane_id`` and ``centre``, ``left``,
    ``right``: (n, 2) arrays in the map frame, metres.
    """
    root = Path(logs)
    path = (root if root.is_dir() else root.parent) / MAPS_DIR / f"{map_name}.parquet"
    if not path.is_file():
        return None
    t = read_roads(path)
    out = {"lane_type": t.column("lane_type").to_pylist(), "road_id": t.column("road_id").to_pylist()}
    out["lane_id"] = t.column("lane_id").to_pylist()
    for part in ("centre", "left", "right"):
        xs, ys = t.column(f"{part}_x").to_pylist(), t.column(f"{part}_y").to_pylist()
        out[part] = [np.column_stack([x, y]) if x else np.zeros((0, 2)) for x, y in zip(xs, ys, strict=True)]
    return pd.DataFrame(out)


def road_frame(logs: str | Path, map_name: str) -> str:
    """The frame description stored with the map geometry (empty when unknown)."""
    root = Path(logs)
    path = (root if root.is_dir() else root.parent) / MAPS_DIR / f"{map_name}.parquet"
    if not path.is_file():
        return ""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"roadworthy.roads")
    return json.loads(raw).get("frame", "") if raw else ""


def actor_layout(obs_names: list[str] | tuple[str, ...]) -> str:
    """``"carla"``, ``"sim"`` or ``"none"``: how nearby actors can be read from the features."""
    names = set(obs_names)
    if any(_CARLA_ACTOR.match(n) for n in names):
        return "carla"
    if {f"{s}_gap_m" for s in _SIM_SLOTS} <= names:
        return "sim"
    return "none"


def nearby_actors(
    obs: np.ndarray, obs_names: Sequence[str], x: float, y: float, yaw: float, sensor_range: float = SENSOR_RANGE
) -> pd.DataFrame:
    """Map-frame positions of the actors that one row's features describe.

    Parameters
    ----------
    obs : (D,) array
    obs_names : sequence of str
    x, y, yaw : float
        Ego pose in the map frame (m, m, rad; left-handed: yaw positive turns right).
    sensor_range : float
        Gap the simulator reports when no actor is in a slot, m.

    Returns
    -------
    pandas.DataFrame
        ``label, x, y`` per actor (map frame).
    """
    names = list(obs_names)
    idx = {n: i for i, n in enumerate(names)}
    fwd, right = [], []
    labels = []
    layout = actor_layout(names)
    if layout == "carla":
        ks = sorted({int(m.group(1)) for n in names if (m := _CARLA_ACTOR.match(n))})
        for k in ks:
            dx, dy = float(obs[idx[f"actor{k}_dx_m"]]), float(obs[idx[f"actor{k}_dy_m"]])
            if dx == 0.0 and dy == 0.0:
                continue  # an empty slot
            fwd.append(dx)
            right.append(dy)
            labels.append(f"actor {k}")
    elif layout == "sim":
        for slot, (sign, side) in _SIM_SLOTS.items():
            gap = float(obs[idx[f"{slot}_gap_m"]])
            if gap >= sensor_range - SENSOR_RANGE_SLACK:
                continue
            fwd.append(sign * (gap + VEHICLE_LENGTH))
            right.append(side * LANE_WIDTH)
            labels.append(slot.replace("_", " "))
    c, s = np.cos(yaw), np.sin(yaw)
    f, r = np.asarray(fwd, dtype=float), np.asarray(right, dtype=float)
    # Left-handed frame: forward is (cos, sin), right of travel is (-sin, cos).
    return pd.DataFrame({"label": labels, "x": x + c * f - s * r, "y": y + s * f + c * r})
