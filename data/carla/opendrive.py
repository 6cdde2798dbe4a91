"""The map layer: lanes of an OpenDRIVE map, via the real ``carla.Map``, with fast queries.

``carla.Map(name, xodr_text)`` parses OpenDRIVE offline (no server). The lanes
(of every type: driving, sidewalk, shoulder, parking, ...) are listed from the
file's road and lane-section structure and sampled every ``spacing`` metres with
``Map.get_waypoint_xodr``, which gives each sample's centre, heading and width.
From the samples come the lane polylines and borders written for the dashboards
(:mod:`roadworthy.data.roads`), and a KD-tree for vectorized point queries: which lane and
lane type a position is on, its offset from the lane centre, its heading error,
and the distance along the lane to the next junction.

Frame: CARLA's, left-handed (x east, y south, z up), metres, yaw in radians; a
positive lateral offset is to the right of the lane's direction of travel.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from roadworthy.data.errors import RoadworthyError

if TYPE_CHECKING:
    import carla

#: Lane types a vehicle may drive on; anything else (or no lane) counts as off-road.
DRIVABLE = frozenset({"driving", "bidirectional", "parking", "entry", "exit", "onramp", "offramp", "stop"})
#: Lane types with a code of their own in query results; the rest are "other".
LANE_TYPES = ("none", "driving", "sidewalk", "shoulder", "parking", "biking", "border", "median", "other")
JUNCTION_HORIZON = 100.0  # m, distances to a junction are capped here


class MapError(RoadworthyError):
    """An OpenDRIVE file that cannot be used."""

    def __init__(self, file: str | Path, problem: str, hint: str) -> None:
        self.file, self.problem, self.hint = file, problem, hint
        super().__init__(f"{file}: {problem.rstrip('.')}. Hint: {hint.rstrip('.')}.")


@dataclass(frozen=True)
class _Lane:
    road: int
    section: int
    lane: int
    kind: str
    s0: float
    s1: float
    junction: int


def _lane_type_code(kind: str) -> int:
    return LANE_TYPES.index(kind) if kind in LANE_TYPES else LANE_TYPES.index("other")


def _parse_lanes(root: ET.Element) -> tuple[list[_Lane], dict[int, dict]]:
    lanes: list[_Lane] = []
    roads: dict[int, dict] = {}
    for road in root.findall("road"):
        rid = int(road.get("id"))
        length = float(road.get("length"))
        junction = int(road.get("junction", "-1"))
        link = road.find("link")
        ends = {}
        for end in ("predecessor", "successor"):
            el = link.find(end) if link is not None else None
            ends[end] = (el.get("elementType"), int(el.get("elementId"))) if el is not None else None
        roads[rid] = {"length": length, "junction": junction, **ends}
        sections = road.find("lanes").findall("laneSection") if road.find("lanes") is not None else []
        starts = [float(sec.get("s")) for sec in sections] + [length]
        for k, sec in enumerate(sections):
            for side in ("left", "right"):
                group = sec.find(side)
                if group is None:
                    continue
                for lane in group.findall("lane"):
                    lid = int(lane.get("id"))
                    if lid == 0:
                        continue
                    lanes.append(
                        _Lane(rid, k, lid, lane.get("type", "none").lower(), starts[k], starts[k + 1], junction)
                    )
    return lanes, roads


def _dist_to_junction(roads: dict[int, dict], road: int, lane: int, s: np.ndarray) -> np.ndarray:
    """Distance along travel direction to the next junction, capped at the horizon."""
    info = roads[road]
    if info["junction"] != -1:
        return np.zeros_like(s)
    forward = lane < 0  # right-hand traffic: negative lanes travel along +s
    rest = info["length"] - s if forward else s
    nxt = info["successor"] if forward else info["predecessor"]
    if nxt is not None and nxt[0] == "junction":
        return np.minimum(rest, JUNCTION_HORIZON)
    if nxt is not None and nxt[0] == "road" and nxt[1] in roads:
        after = roads[nxt[1]]
        more = after["length"] if after["junction"] == -1 else 0.0
        return np.minimum(rest + more, JUNCTION_HORIZON)
    return np.full_like(s, JUNCTION_HORIZON)


class MapLayer:
    """Lanes of one OpenDRIVE map, sampled, with point queries.

    Use :meth:`from_xodr`. Attributes ending in ``_`` are per-sample arrays.
    """

    def __init__(self, name: str, xodr: str, spacing: float) -> None:
        self.name = name
        self.xodr = xodr
        self.spacing = spacing

    @classmethod
    def from_xodr(cls, source: str | Path, *, name: str | None = None, spacing: float = 1.0) -> MapLayer:
        """Build the layer from an OpenDRIVE file (or its text, with ``name``).

        Raises
        ------
        MapError
            For a missing or malformed file.
        """
        path = Path(source) if name is None else None
        if path is not None:
            if not path.is_file():
                raise MapError(path, "no such OpenDRIVE file", "give the .xodr of the town (e.g. Town01.xodr)")
            text = path.read_text(encoding="utf-8", errors="replace")
            name = path.stem
        else:
            text = str(source)
        where = path or name
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise MapError(where, f"not valid XML ({exc})", "give an OpenDRIVE .xodr file") from None
        if root.tag != "OpenDRIVE" or not root.findall("road"):
            raise MapError(where, "no OpenDRIVE roads in the file", "give an OpenDRIVE .xodr file")
        layer = cls(name, text, spacing)
        layer._build(root, where)
        return layer

    def carla_map(self) -> carla.Map:
        """The real ``carla.Map`` of this layer (needs the ``carla`` extra)."""
        if getattr(self, "_carla_map", None) is None:
            import carla

            self._carla_map = carla.Map(self.name, self.xodr)
        return self._carla_map

    def _build(self, root: ET.Element, where) -> None:
        from scipy.spatial import cKDTree

        try:
            cmap = self.carla_map()
        except ImportError:
            raise MapError(
                where, "the carla package is not installed", "pip install 'roadworthy[carla]' (CPython 3.10-3.12)"
            ) from None
        except RuntimeError as exc:
            raise MapError(where, f"carla could not parse the map ({exc})", "give a valid OpenDRIVE file") from None
        lanes, roads = _parse_lanes(root)
        cols: dict[str, list] = {k: [] for k in ("x", "y", "yaw", "width", "s", "lane", "type", "junction", "djunc")}
        self.lanes: list[dict] = []
        for lane in lanes:
            n = max(2, math.ceil((lane.s1 - lane.s0) / self.spacing) + 1)
            s = np.linspace(lane.s0, max(lane.s0, lane.s1 - 1e-3), n)
            pts = []
            for si in s:
                wp = cmap.get_waypoint_xodr(lane.road, lane.lane, float(si))
                if wp is None:
                    continue
                t = wp.transform
                pts.append((t.location.x, t.location.y, math.radians(t.rotation.yaw), wp.lane_width, si))
            if len(pts) < 2:
                continue
            arr = np.array(pts)
            idx = len(self.lanes)
            yaw = arr[:, 2]
            right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
            centre = arr[:, :2]
            half = arr[:, 3:4] / 2
            self.lanes.append(
                {
                    "road_id": str(lane.road),
                    "lane_id": lane.lane,
                    "lane_type": lane.kind,
                    "junction_id": lane.junction if lane.junction != -1 else None,
                    "centre": centre,
                    "left": centre - right * half,
                    "right": centre + right * half,
                }
            )
            m = len(arr)
            cols["x"].append(arr[:, 0])
            cols["y"].append(arr[:, 1])
            cols["yaw"].append(yaw)
            cols["width"].append(arr[:, 3])
            cols["s"].append(arr[:, 4])
            cols["lane"].append(np.full(m, idx))
            cols["type"].append(np.full(m, _lane_type_code(lane.kind)))
            cols["junction"].append(np.full(m, lane.junction))
            cols["djunc"].append(_dist_to_junction(roads, lane.road, lane.lane, arr[:, 4]))
        if not self.lanes:
            raise MapError(where, "carla found no lanes in the map", "check the OpenDRIVE file")
        for k, v in cols.items():
            setattr(self, f"{k}_", np.concatenate(v))
        self._tree = cKDTree(np.stack([self.x_, self.y_], axis=1))

    # -- outputs -------------------------------------------------------------------
    def road_table(self) -> pa.Table:
        """Lane polylines in the :mod:`roadworthy.data.roads` schema."""
        from roadworthy.data.roads import road_table

        return road_table(self.name, self.lanes)

    def write(self, folder: str | Path) -> Path:
        """Cache the lanes as ``folder/<name>.parquet`` and the OpenDRIVE text beside it."""
        from roadworthy.data.roads import write_roads
        from roadworthy.data.writer import AtomicFile

        folder = Path(folder)
        out = write_roads(
            self.road_table(),
            folder / f"{self.name}.parquet",
            frame="CARLA (left-handed: x east, y south, z up), metres",
            source=f"OpenDRIVE {self.name}",
        )
        with AtomicFile(folder / f"{self.name}.xodr") as f:
            f.tmp.write_text(self.xodr, encoding="utf-8")
        return out

    # -- queries -------------------------------------------------------------------
    def query(
        self, x: np.ndarray, y: np.ndarray, yaw: np.ndarray | None = None, *, k: int = 12
    ) -> dict[str, np.ndarray]:
        """Lane under each point.

        Parameters
        ----------
        x, y : array of float
            Positions in the map frame, m.
        yaw : array of float, optional
            Headings, rad; when given, lanes whose direction agrees are preferred
            (lanes overlap in junctions) and ``heading_error`` is computed.
        k : int
            Nearest samples examined per point.

        Returns
        -------
        dict of arrays
            ``lane_type`` (str), ``lane_code`` (index in :data:`LANE_TYPES`),
            ``road_id``, ``lane_id``, ``junction_id`` (-1 when none), ``on_lane``
            (bool), ``offset`` (m, + right of the lane centre), ``heading_error``
            (rad, wrapped to [-pi, pi); NaN without ``yaw``), ``dist_to_junction`` (m),
            ``drivable`` (bool).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n = len(x)
        k = min(k, len(self.x_))
        dist, idx = self._tree.query(np.stack([x, y], axis=1), k=k)
        dist, idx = dist.reshape(n, k), idx.reshape(n, k)
        cyaw = self.yaw_[idx]
        dx, dy = x[:, None] - self.x_[idx], y[:, None] - self.y_[idx]
        lat = -np.sin(cyaw) * dx + np.cos(cyaw) * dy
        lon = np.cos(cyaw) * dx + np.sin(cyaw) * dy
        half = self.width_[idx] / 2
        inside = (np.abs(lat) <= half + 1e-6) & (np.abs(lon) <= self.spacing)
        score = np.abs(lat) / np.maximum(half, 1e-3) + np.where(inside, 0.0, 10.0 + dist)
        if yaw is not None:
            yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
            herr = _wrap(yaw[:, None] - cyaw)
            score = score + np.where(np.abs(herr) < np.pi / 2, 0.0, 2.0)
        best = np.argmin(score, axis=1)
        rows = np.arange(n)
        j = idx[rows, best]
        on = inside[rows, best]
        code = np.where(on, self.type_[j], 0)
        lane_rows = self.lane_[j]
        out = {
            "lane_code": code,
            "lane_type": np.array(LANE_TYPES, dtype=object)[code],
            "road_id": np.array([int(self.lanes[r]["road_id"]) for r in lane_rows]),
            "lane_id": np.array([self.lanes[r]["lane_id"] for r in lane_rows]),
            "junction_id": np.where(on, self.junction_[j], -1),
            "on_lane": on,
            "offset": lat[rows, best],
            "heading_error": _wrap(yaw - self.yaw_[j]) if yaw is not None else np.full(n, np.nan),
            "dist_to_junction": np.where(on, self.djunc_[j], JUNCTION_HORIZON),
        }
        out["drivable"] = on & np.isin(code, [LANE_TYPES.index(t) for t in ("driving", "parking")]) | on & (
            code == LANE_TYPES.index("other")
        ) & np.array([self.lanes[r]["lane_type"] in DRIVABLE for r in lane_rows], dtype=bool)
        return out


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi
