"""The ego's pose against the road: declared pose features and geometric events (contract v1.1 proposal).

Off the road and lane departure are facts of where the car is, as collisions are facts
of gaps and closing speeds. A log that carries the ego's pose (``x, y, yaw, speed``)
and its map (``_maps/``) lets an evaluator compute them in every simulated step instead
of learning them from a handful of logged events: the pose follows from the action
(:mod:`roadworthy.data.kinematics`), the facts from the pose and the map
(:mod:`roadworthy.data.road_geometry`).

Metadata key ``roadworthy.geometry`` (JSON; every key optional)::

    {"handedness": "left",
     "vehicle": {"length_m": 5.0, "width_m": 2.0},
     "off_road": "centre",
     "features": {"speed": "speed_mps", "lane_offset": "lane_offset_m",
                  "heading_error": "heading_error_rad", "left_edge": "dist_left_edge_m",
                  "right_edge": "dist_right_edge_m", "has_left_lane": "has_left_lane",
                  "has_right_lane": "has_right_lane", "accel": "accel_mps2",
                  "lane_type": {"driving": "lane_driving", "sidewalk": "lane_sidewalk"},
                  "lane_type_other": "lane_other_or_none"}}

* ``handedness``: of the map frame, ``left`` when y points to the right of x.
* ``vehicle``: the ego's box, m (default 4.5 x 2.0).
* ``off_road``: when the car counts as off the road: ``centre`` (its centre is on no
  drivable lane: the embedded simulator's and the CARLA import's rule) or
  ``footprint`` (a corner lies more than 0.3 m beyond the drivable band: nuPlan's
  drivable-area tolerance).
* ``features``: obs entries that *are* functions of the pose, in these units and
  signs: speed (m/s), accel (m/s^2 over the step that led here), lane_offset (m,
  + right of travel, from the nearest drivable lane's centre), heading_error (rad,
  yaw minus the lane's heading), left_edge / right_edge (m from the car's centre to
  each edge of the drivable band, negative beyond), has_left_lane / has_right_lane
  (1.0 when a drivable lane of the same direction lies beside), lane_type (one-hot
  columns of the type of lane under the car) and lane_type_other (1.0 on any other
  type, or none). An evaluator computes these from the simulated pose; every other
  feature stays learned.

Two per-step events follow from every pose (:meth:`EgoGeometry.events`):
``off_road`` (as declared) and ``lane_departure`` (a corner of the car more than 0.3 m
beyond an edge of the drivable band, i.e. over the road's outer marking or into
lanes of the other direction, or driving against the lane's direction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.errors import UsageError, declared_json
from roadworthy.data.kinematics import Bicycle, fit_bicycle, residuals
from roadworthy.data.road_geometry import RoadGeometry

if TYPE_CHECKING:
    from roadworthy.data.road_geometry import RoadQuery

META_KEY = "geometry"
KINEMATICS_KEY = "kinematics"
FEATURE_KINDS = (
    "speed",
    "accel",
    "lane_offset",
    "heading_error",
    "left_edge",
    "right_edge",
    "has_left_lane",
    "has_right_lane",
)
#: nuPlan's drivable-area compliance tolerance: how far a corner may lie beyond the drivable area, m.
DRIVABLE_TOLERANCE = 0.3
#: Channels the geometry computes.
EVENTS = ("off_road", "lane_departure")
_HINT = "see docs/formats.md, 'contract v1.1 proposal'"


@dataclass(frozen=True)
class GeometrySpec:
    """A log's geometry declaration (metadata ``roadworthy.geometry``), with obs indices."""

    handedness: str = "left"
    length: float = 4.5
    width: float = 2.0
    off_road: str = "centre"
    features: dict[str, int] = field(default_factory=dict)
    lane_types: dict[str, int] = field(default_factory=dict)
    lane_other: int | None = None

    @property
    def columns(self) -> list[int]:
        """Every obs column the geometry computes."""
        cols = [*self.features.values(), *self.lane_types.values()]
        return sorted({*cols, *([self.lane_other] if self.lane_other is not None else [])})

    @classmethod
    def from_metadata(cls, extra: Mapping[str, str], obs_names: Sequence[str]) -> GeometrySpec:
        """The declaration of a log, or the defaults (no computed features) when it has none.

        Raises
        ------
        UsageError
            For a declaration that is not valid JSON, names obs entries the log lacks, or
            has values out of range.
        """
        spec = declared_json(extra, META_KEY, _HINT)
        if spec is None:
            return cls()
        index = {n: i for i, n in enumerate(obs_names)}

        def col(name, what: str) -> int:
            if name not in index:
                raise UsageError(
                    f"metadata roadworthy.{META_KEY}: {what} names {name!r}, which is not an obs entry", _HINT
                )
            return index[name]

        feats = spec.get("features", {}) or {}
        if not isinstance(feats, dict):
            raise UsageError(f"metadata roadworthy.{META_KEY}: features must be an object", _HINT)
        unknown = set(feats) - {*FEATURE_KINDS, "lane_type", "lane_type_other"}
        if unknown:
            raise UsageError(
                f"metadata roadworthy.{META_KEY}: unknown feature kind(s) {sorted(unknown)}",
                f"use {', '.join(FEATURE_KINDS)}, lane_type, lane_type_other",
            )
        features = {k: col(v, f"features.{k}") for k, v in feats.items() if k in FEATURE_KINDS}
        lane_types = {str(t): col(v, f"features.lane_type.{t}") for t, v in (feats.get("lane_type") or {}).items()}
        other = feats.get("lane_type_other")
        vehicle = spec.get("vehicle", {}) or {}
        length, width = float(vehicle.get("length_m", 4.5)), float(vehicle.get("width_m", 2.0))
        if not (0 < length < 30 and 0 < width < 10):
            raise UsageError(
                f"metadata roadworthy.{META_KEY}: vehicle size {length} x {width} m is out of range", _HINT
            )
        handed = spec.get("handedness", "left")
        off_road = spec.get("off_road", "centre")
        if handed not in ("left", "right") or off_road not in ("centre", "footprint"):
            raise UsageError(
                f"metadata roadworthy.{META_KEY}: handedness must be left or right and off_road centre or footprint",
                _HINT,
            )
        return cls(
            handedness=handed,
            length=length,
            width=width,
            off_road=off_road,
            features=features,
            lane_types=lane_types,
            lane_other=col(other, "features.lane_type_other") if other is not None else None,
        )


def kinematics_from_metadata(extra: Mapping[str, str], action_names: Sequence[str]) -> Bicycle | None:
    """The declared kinematics (metadata ``roadworthy.kinematics``), or None."""
    spec = declared_json(extra, KINEMATICS_KEY, _HINT)
    return None if spec is None else Bicycle.from_metadata(spec, action_names)


class EgoGeometry:
    """Everything that follows from the ego's pose in one log: the next pose, the declared
    pose features, and the geometric events.

    Build with :meth:`for_log`, which returns None (and a reason) when the log lacks what
    geometry needs.
    """

    def __init__(
        self, spec: GeometrySpec, roads: list[RoadGeometry], kinematics: Bicycle, fit: dict, dt: float
    ) -> None:
        self.spec, self.roads, self.kinematics, self.fit, self.dt = spec, roads, kinematics, fit, dt

    @classmethod
    def for_log(
        cls,
        root: str | Path,
        extra: Mapping[str, str],
        obs_names: Sequence[str],
        action_names: Sequence[str],
        *,
        pose: np.ndarray,
        action: np.ndarray,
        has_next: np.ndarray,
        map_name: np.ndarray,
        dt: float,
    ) -> tuple[EgoGeometry | None, str]:
        """The geometry of a log, and why not when it is None.

        Parameters
        ----------
        root : path of the dataset (its ``_maps/``)
        extra : the log's metadata
        pose : (N, 4) logged x, y, yaw, speed (NaN where not logged)
        action : (N, A)
        has_next : (N,) the next row follows in the same episode
        map_name : (N,) object
        """
        spec = GeometrySpec.from_metadata(extra, obs_names)
        if not np.isfinite(pose).all():
            return None, "the log has no complete pose columns (x, y, yaw, speed)"
        names = sorted({str(m) for m in map_name})
        roads = []
        for m in names:
            g = None if m in ("unknown", "None", "") else RoadGeometry.from_dataset(root, m, handedness=spec.handedness)
            if g is None:
                return None, f"the log keeps no road geometry of map '{m}' in _maps/"
            roads.append(g)
        kin = kinematics_from_metadata(extra, action_names)
        if kin is None:
            kin = fit_bicycle(pose, action, has_next, dt)
        fit = residuals(kin, pose, action, has_next, dt)
        self = cls(spec, roads, kin, fit, dt)
        self.map_names = names
        return self, ""

    @classmethod
    def from_roads(
        cls,
        roads: Mapping[str, RoadGeometry],
        extra: Mapping[str, str],
        obs_names: Sequence[str],
        action_names: Sequence[str],
        dt: float,
    ) -> EgoGeometry:
        """From road geometries by map name and a log's metadata, which must declare its kinematics."""
        kin = kinematics_from_metadata(extra, action_names)
        if kin is None:
            raise UsageError("the metadata declares no roadworthy.kinematics", _HINT)
        self = cls(GeometrySpec.from_metadata(extra, obs_names), list(roads.values()), kin, {}, dt)
        self.map_names = list(roads)
        return self

    def map_index(self, map_name: np.ndarray) -> np.ndarray:
        """Index into :attr:`roads` of each row's map."""
        lookup = {m: i for i, m in enumerate(self.map_names)}
        return np.array([lookup[str(m)] for m in map_name], dtype=np.int64)

    def step(self, pose: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Next poses (N, 4) under actions (N, A)."""
        return self.kinematics.step(pose, action, self.dt)

    def _query(self, pose: np.ndarray, maps: np.ndarray):
        if len(self.roads) == 1:
            return self.roads[0].query(pose[:, 0], pose[:, 1], pose[:, 2])
        from dataclasses import fields

        from roadworthy.data.road_geometry import RoadQuery

        n = len(pose)
        parts = {}
        for i, g in enumerate(self.roads):
            rows = np.flatnonzero(maps == i)
            if len(rows):
                parts[i] = (rows, g.query(pose[rows, 0], pose[rows, 1], pose[rows, 2]))
        out = {}
        for f in fields(RoadQuery):
            first = next(iter(parts.values()))[1]
            arr = np.empty(n, dtype=getattr(first, f.name).dtype)
            for rows, q in parts.values():
                arr[rows] = getattr(q, f.name)
            out[f.name] = arr
        return RoadQuery(**out)

    def observe(
        self, pose: np.ndarray, maps: np.ndarray, prev_speed: np.ndarray | None = None
    ) -> tuple[np.ndarray, RoadQuery]:
        """The declared pose features of poses (N, 4) and the road query behind them.

        Returns
        -------
        dict of int to (N,) array
            Obs column -> value.
        RoadQuery
        """
        q = self._query(pose, maps)
        spec = self.spec
        values = {
            "speed": pose[:, 3],
            "lane_offset": q.offset,
            "heading_error": q.heading_error,
            "left_edge": q.left_edge,
            "right_edge": q.right_edge,
            "has_left_lane": (q.lanes_left > 0).astype(np.float64),
            "has_right_lane": (q.lanes_right > 0).astype(np.float64),
        }
        if prev_speed is not None:
            values["accel"] = (pose[:, 3] - prev_speed) / self.dt
        out = {c: values[k] for k, c in spec.features.items() if k in values}
        if spec.lane_types or spec.lane_other is not None:
            seen = np.zeros(len(pose), dtype=bool)
            for t, c in spec.lane_types.items():
                hit = q.lane_type == t
                out[c] = hit.astype(np.float64)
                seen |= hit
            if spec.lane_other is not None:
                out[spec.lane_other] = (~seen).astype(np.float64)
        return out, q

    def events(self, pose: np.ndarray, q) -> dict[str, np.ndarray]:
        """Per-pose events (bool (N,)): ``off_road`` and ``lane_departure`` (module docstring)."""
        he = np.nan_to_num(q.heading_error)
        # Half the box's extent across the lane, m.
        extent = self.spec.width / 2 * np.abs(np.cos(he)) + self.spec.length / 2 * np.abs(np.sin(he))
        beyond = np.minimum(q.left_edge, q.right_edge) - extent
        wrong_way = (np.abs(he) > np.pi / 2) & (pose[:, 3] > 1.0)
        if self.spec.off_road == "centre":
            off = ~q.drivable
        else:
            off = beyond < -DRIVABLE_TOLERANCE
        return {"off_road": off, "lane_departure": (beyond < -DRIVABLE_TOLERANCE) | wrong_way | off}

    def describe(self) -> dict:
        """For reports: the kinematics, their fit on the log, the maps and the computed features."""
        return {
            "maps": list(self.map_names),
            "kinematics": self.kinematics.to_dict(),
            "kinematics_one_step_error": self.fit,
            "off_road_rule": "the car's centre is on no drivable lane"
            if self.spec.off_road == "centre"
            else f"a corner of the car lies over {DRIVABLE_TOLERANCE} m beyond the drivable band",
            "lane_departure_rule": f"a corner of the car lies over {DRIVABLE_TOLERANCE} m beyond an edge of the "
            "drivable band (same-direction drivable lanes side by side), or the car drives against its lane",
            "vehicle_m": [self.spec.length, self.spec.width],
        }
