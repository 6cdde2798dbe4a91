"""Where a car stands on the road: vectorized point queries of a map's lanes.

The lanes a dataset keeps beside its rows (``<dataset>/_maps/<map>.parquet``,
:mod:`roadworthy.data.roads`) are resampled every ``spacing`` metres; a KD-tree over the
samples answers, for many points at once, which lane each point is on, its offset from
that lane's centre line, its heading relative to the lane, whether it is on a drivable
lane at all, and how far it is from each edge of the *drivable band*: the drivable
lanes side by side that share its direction of travel. Those are the facts that
decide off-road and lane departure (nuPlan's drivable-area and driving-direction
compliance), computed from a pose and the map alone.

Frames: a log's map frame may be left-handed (y to the right of x, as highway-env and
CARLA) or right-handed. Lateral quantities here are positive to the **right of the
lane's direction of travel** in either case; headings and heading errors keep the
frame's own sense (yaw measured from x toward y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

#: Lane types a vehicle may drive on (OpenDRIVE's names); anything else, or no lane, is off the road.
DRIVABLE = frozenset({"driving", "bidirectional", "parking", "entry", "exit", "onramp", "offramp", "stop"})
#: How many lanes beside a lane the drivable band may hold, each way.
MAX_BAND_LANES = 12


@dataclass
class RoadQuery:
    """Answers for N points (arrays of shape (N,)).

    Attributes
    ----------
    lane : int
        Index of the nearest drivable lane (its row among the table's usable lanes),
        preferring lanes that contain the point and share its direction.
    on_lane : bool
        The point lies within the borders of some lane (of any type).
    drivable : bool
        ... within a drivable lane: False means off the road.
    lane_type : object
        Type of the lane under the point (``driving``, ``sidewalk``, ...); ``none`` when on none.
    offset : float
        Lateral offset from the drivable lane's centre line, m, positive to the right of travel.
    heading_error : float
        Heading minus the lane's heading, rad, wrapped to [-pi, pi) (NaN without headings).
    left_edge, right_edge : float
        Distance from the point to the left and right edge of the drivable band, m;
        negative beyond the edge.
    lanes_left, lanes_right : int
        Drivable lanes of the same direction beside the matched lane on each side.
    """

    lane: np.ndarray
    on_lane: np.ndarray
    drivable: np.ndarray
    lane_type: np.ndarray
    offset: np.ndarray
    heading_error: np.ndarray
    left_edge: np.ndarray
    right_edge: np.ndarray
    lanes_left: np.ndarray
    lanes_right: np.ndarray


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def _resample(xy: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline (m, 2)."""
    seg = np.hypot(*np.diff(xy, axis=0).T)
    s = np.r_[0.0, np.cumsum(seg)]
    if s[-1] <= 0:
        return np.repeat(xy[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(t, s, xy[:, 0]), np.interp(t, s, xy[:, 1])])


class RoadGeometry:
    """The lanes of one map with point queries; build with :meth:`from_table` or :meth:`from_dataset`.

    Parameters
    ----------
    handedness : {"left", "right"}
        Of the map frame: ``left`` when y points to the right of x (highway-env, CARLA).
    spacing : float
        Sample spacing along each lane, m.
    """

    def __init__(self, name: str, handedness: str = "left", spacing: float = 1.0) -> None:
        if handedness not in ("left", "right"):
            raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")
        self.name, self.handedness, self.spacing = name, handedness, float(spacing)

    @classmethod
    def from_dataset(cls, root: str | Path, map_name: str, **kw) -> RoadGeometry | None:
        """The geometry a dataset keeps for ``map_name``, or None when it keeps none."""
        from roadworthy.data.roads import read_roads, roads_path

        base = Path(root)
        path = roads_path(base if base.is_dir() else base.parent, map_name)
        if not path.is_file():
            return None
        return cls.from_table(read_roads(path), name=map_name, **kw)

    @classmethod
    def from_table(
        cls, table: pa.Table, *, name: str = "", handedness: str = "left", spacing: float = 1.0
    ) -> RoadGeometry:
        """From a road table (:data:`roadworthy.data.roads.ROAD_SCHEMA`).

        Raises
        ------
        ValueError
            For a table without a single usable lane.
        """
        self = cls(name, handedness, spacing)
        cols: dict[str, list] = {k: [] for k in ("x", "y", "yaw", "lo", "hi", "lane")}
        self.lane_types: list[str] = []
        self.drivable_lane: list[bool] = []
        for row in table.to_pylist():
            centre = np.column_stack([row["centre_x"] or [], row["centre_y"] or []]).astype(np.float64)
            if len(centre) < 2:
                continue
            length = float(np.hypot(*np.diff(centre, axis=0).T).sum())
            if length <= 1e-6:
                continue
            n = max(2, math.ceil(length / spacing) + 1)
            c = _resample(centre, n)
            tangent = np.gradient(c, axis=0)
            yaw = np.arctan2(tangent[:, 1], tangent[:, 0])
            normal = self._right(yaw)
            borders = []
            for part in ("left", "right"):
                xy = np.column_stack([row[f"{part}_x"] or [], row[f"{part}_y"] or []]).astype(np.float64)
                borders.append(((_resample(xy, n) - c) * normal).sum(axis=1) if len(xy) >= 2 else np.zeros(n))
            idx = len(self.lane_types)
            self.lane_types.append(str(row["lane_type"]))
            self.drivable_lane.append(str(row["lane_type"]) in DRIVABLE)
            cols["x"].append(c[:, 0])
            cols["y"].append(c[:, 1])
            cols["yaw"].append(yaw)
            # The table's labels are not trusted: each border is placed by its side of the centre line.
            cols["lo"].append(np.minimum(borders[0], borders[1]))
            cols["hi"].append(np.maximum(borders[0], borders[1]))
            cols["lane"].append(np.full(n, idx))
        if not self.lane_types:
            raise ValueError(f"the road table of '{name}' holds no lane with a usable centre line")
        for k, v in cols.items():
            setattr(self, f"{k}_", np.concatenate(v))
        self.drivable_ = np.asarray(self.drivable_lane, dtype=bool)[self.lane_]
        from scipy.spatial import cKDTree

        self._tree = cKDTree(np.column_stack([self.x_, self.y_]))
        # Band edges and lane frames come from the nearest drivable lane, also for a
        # point on a sidewalk: its distance to the band's edge is then negative.
        self._drv = np.flatnonzero(self.drivable_)
        if not len(self._drv):
            raise ValueError(f"the road table of '{name}' holds no drivable lane ({', '.join(DRIVABLE)})")
        self._drv_tree = cKDTree(np.column_stack([self.x_[self._drv], self.y_[self._drv]]))
        self._bands()
        return self

    # -- helpers -------------------------------------------------------------------
    def _right(self, yaw: np.ndarray) -> np.ndarray:
        """Unit vectors to the right of travel, (N, 2)."""
        s = 1.0 if self.handedness == "left" else -1.0
        return np.column_stack([-s * np.sin(yaw), s * np.cos(yaw)])

    def _match(
        self, x: np.ndarray, y: np.ndarray, yaw: np.ndarray | None, k: int = 8, *, drivable_only: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best sample per point, its lateral offset and whether the point is inside that lane."""
        n = len(x)
        tree, pool = (self._drv_tree, self._drv) if drivable_only else (self._tree, None)
        k = min(k, tree.n)
        dist, idx = tree.query(np.column_stack([x, y]), k=k)
        dist, idx = dist.reshape(n, k), idx.reshape(n, k)
        if pool is not None:
            idx = pool[idx]
        cyaw = self.yaw_[idx]
        dx, dy = x[:, None] - self.x_[idx], y[:, None] - self.y_[idx]
        s = 1.0 if self.handedness == "left" else -1.0
        lat = s * (-np.sin(cyaw) * dx + np.cos(cyaw) * dy)
        lon = np.cos(cyaw) * dx + np.sin(cyaw) * dy
        lo, hi = self.lo_[idx], self.hi_[idx]
        inside = (lat >= lo - 1e-6) & (lat <= hi + 1e-6) & (np.abs(lon) <= self.spacing)
        half = np.maximum((hi - lo) / 2, 1e-3)
        mid = (hi + lo) / 2
        # Inside a lane beats near one; among lanes, the one whose centre is nearest;
        # drivable lanes and lanes of the point's own direction break ties.
        score = np.abs(lat - mid) / half + np.where(inside, 0.0, 10.0 + dist) + np.where(self.drivable_[idx], 0.0, 0.5)
        if yaw is not None:
            score = score + np.where(np.abs(wrap(yaw[:, None] - cyaw)) < np.pi / 2, 0.0, 2.0)
        best = np.argmin(score, axis=1)
        rows = np.arange(n)
        return idx[rows, best], lat[rows, best], inside[rows, best]

    def _bands(self) -> None:
        """For every sample: the drivable band's edges (lateral, in its own frame) and lane counts."""
        m = len(self.x_)
        c = np.column_stack([self.x_, self.y_])
        normal = self._right(self.yaw_)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            edge = np.where(sign < 0, self.lo_, self.hi_).astype(np.float64)
            count = np.zeros(m, dtype=np.int64)
            active = self.drivable_.copy()
            for _ in range(MAX_BAND_LANES):
                if not active.any():
                    break
                rows = np.flatnonzero(active)
                probe = c[rows] + normal[rows] * (edge[rows] + sign * 0.25)[:, None]
                j, _, inside = self._match(probe[:, 0], probe[:, 1], self.yaw_[rows], drivable_only=True)
                same = np.abs(wrap(self.yaw_[j] - self.yaw_[rows])) < np.pi / 2
                ok = inside & self.drivable_[j] & same & (self.lane_[j] != self.lane_[rows])
                # The neighbour's far border, in this sample's frame.
                centre_j = ((c[j] - c[rows]) * normal[rows]).sum(axis=1)
                far = centre_j + np.where(sign < 0, self.lo_[j], self.hi_[j])
                ok &= sign * (far - edge[rows]) > 0.1
                edge[rows[ok]] = far[ok]
                count[rows[ok]] += 1
                active[rows[~ok]] = False
            setattr(self, f"band_{side}_", edge)
            setattr(self, f"lanes_{side}_", count)

    # -- queries -------------------------------------------------------------------
    def query(self, x: np.ndarray, y: np.ndarray, yaw: np.ndarray | None = None) -> RoadQuery:
        """Where each point (x, y) stands, m; ``yaw`` (rad) prefers lanes of that direction."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        yaw_arr = None if yaw is None else np.asarray(yaw, dtype=np.float64).reshape(-1)
        j, lat, inside = self._match(x, y, yaw_arr, drivable_only=True)
        if len(self._drv) == len(self.x_):
            on, types = inside, np.asarray(self.lane_types, dtype=object)[self.lane_[j]]
        else:  # other lane types too: what lies under the point may not be drivable
            ja, _, on = self._match(x, y, yaw_arr)
            types = np.asarray(self.lane_types, dtype=object)[self.lane_[ja]]
            inside = inside & on & self.drivable_[ja]
        return RoadQuery(
            lane=self.lane_[j],
            on_lane=on,
            drivable=inside,
            lane_type=np.where(on, types, "none"),
            offset=lat,
            heading_error=wrap(yaw_arr - self.yaw_[j]) if yaw_arr is not None else np.full(len(x), np.nan),
            left_edge=lat - self.band_left_[j],
            right_edge=self.band_right_[j] - lat,
            lanes_left=self.lanes_left_[j],
            lanes_right=self.lanes_right_[j],
        )
