"""Surrogate safety measures: time to collision and time headway as cost channels.

Collisions are rare in any fleet's logs, too rare to learn from directly; the
moments that come before them are not. Traffic-safety research measures them with
surrogate safety measures (Hayward 1972; Vogel 2003): the time to collision (TTC)
with the vehicle ahead, gap / closing speed, and the time headway, gap / own speed.
Where a log's metadata says which features carry the own speed, the gap to the lead
vehicle and its relative speed, two extra per-step cost channels follow:

* ``ttc``: 1 on a step whose TTC is below ``ttc_below`` seconds (default 1.5 s, a
  common threshold for a serious conflict), else 0;
* ``headway``: 1 on a step whose time headway is below ``headway_below`` seconds
  (default 0.5 s, well under any everyday following distance), else 0.

They are functions of the state alone, so an evaluator can compute them exactly on
logged or simulated states instead of learning them. Metadata key (JSON)::

    roadworthy.safety_features = {"speed": "speed_mps", "lead_gap": "lead_gap_m",
                                  "lead_rel_speed": "lead_rel_speed_mps",
                                  "no_lead_gap": 100.0,
                                  "road_edges": ["dist_left_edge_m", "dist_right_edge_m"]}

``speed`` (m/s), ``lead_gap`` (bumper to bumper, m) and ``lead_rel_speed`` (the lead's
speed minus ours, m/s) name obs entries; ``no_lead_gap`` is the gap the features report
when there is no vehicle ahead (optional); ``road_edges`` (optional) name features
that hold the distance from the car's centre to each edge of the drivable road,
negative beyond it.

The same declarations say when a *simulated* state is a crash (:meth:`SurrogateSpec.events`):
a bumper-to-bumper gap at or below zero is a collision with the lead, and a road-edge
distance below zero is off the road. A learned model of a log never sees the state
after a crash (the episode ends there), so it cannot learn these; the definitions of
the features give them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from roadworthy.data.errors import UsageError

META_KEY = "safety_features"
CHANNELS = ("ttc", "headway")
#: Below this speed the headway is not a risk measure (a queue at a standstill), m/s.
MIN_SPEED = 2.0


@dataclass(frozen=True)
class SurrogateSpec:
    """Where the surrogate measures' inputs sit in ``obs``, and their thresholds.

    Parameters
    ----------
    speed, lead_gap, lead_rel_speed : int
        Column indices in ``obs``.
    no_lead_gap : float
        Gaps at or above this mean no lead vehicle, m (inf: every gap is a lead).
    ttc_below, headway_below : float
        Thresholds of the two channels, s.
    """

    speed: int
    lead_gap: int
    lead_rel_speed: int
    no_lead_gap: float = math.inf
    ttc_below: float = 1.5
    headway_below: float = 0.5
    road_edges: tuple[int, ...] = ()

    @classmethod
    def from_metadata(
        cls, extra: Mapping[str, str], obs_names: Sequence[str], *, ttc_below: float = 1.5, headway_below: float = 0.5
    ) -> SurrogateSpec | None:
        """The spec a log's metadata declares, or None when it declares none.

        Raises
        ------
        UsageError
            For a declaration that is not valid JSON or names features the log lacks.
        """
        raw = extra.get(META_KEY)
        if raw is None:
            return None
        hint = (
            'write e.g. {"speed": "speed_mps", "lead_gap": "lead_gap_m", "lead_rel_speed": "lead_rel_speed_mps"} '
            "naming obs entries (see docs/formats.md)"
        )
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError:
            raise UsageError(f"metadata roadworthy.{META_KEY} is not valid JSON ({raw[:60]!r})", hint) from None
        if not isinstance(spec, dict):
            raise UsageError(f"metadata roadworthy.{META_KEY} must be a JSON object, got {raw[:60]!r}", hint)
        index = {n: i for i, n in enumerate(obs_names)}
        cols = {}
        for key in ("speed", "lead_gap", "lead_rel_speed"):
            name = spec.get(key)
            if name not in index:
                raise UsageError(
                    f"metadata roadworthy.{META_KEY}: '{key}' names {name!r}, which is not an obs entry", hint
                )
            cols[key] = index[name]
        no_lead = spec.get("no_lead_gap", math.inf)
        if not isinstance(no_lead, int | float) or isinstance(no_lead, bool) or no_lead <= 0:
            raise UsageError(f"metadata roadworthy.{META_KEY}: no_lead_gap must be a positive number", hint)
        edges = spec.get("road_edges", [])
        if not isinstance(edges, list) or any(e not in index for e in edges):
            raise UsageError(f"metadata roadworthy.{META_KEY}: road_edges must list obs entries, got {edges!r}", hint)
        return cls(
            **cols,
            no_lead_gap=float(no_lead),
            ttc_below=ttc_below,
            headway_below=headway_below,
            road_edges=tuple(index[e] for e in edges),
        )

    def costs(self, obs: np.ndarray) -> np.ndarray:
        """Per-step costs (N, 2) of states (N, D): columns ``ttc``, ``headway`` (0 or 1)."""
        obs = np.asarray(obs)
        gap = obs[..., self.lead_gap].astype(np.float64)
        rel = obs[..., self.lead_rel_speed].astype(np.float64)
        speed = obs[..., self.speed].astype(np.float64)
        present = gap < self.no_lead_gap - 1e-3
        closing = -rel
        gap0 = np.maximum(gap, 0.0)
        ttc_hit = present & (closing > 1e-3) & (gap0 < self.ttc_below * np.maximum(closing, 1e-3))
        hw_hit = present & (speed > MIN_SPEED) & (gap0 < self.headway_below * np.maximum(speed, MIN_SPEED))
        return np.stack([ttc_hit, hw_hit], axis=-1).astype(np.float64)

    def near_crash(self, obs: np.ndarray, dt: float) -> dict[str, np.ndarray]:
        """Where a state is one step from the crash that :meth:`events` detects: the lead gap
        within the closing speed's reach, a road edge within lateral reach. A logged crash
        from such a state is explained by the feature definitions (see
        :mod:`roadworthy.evaluator.model_based`: learned event models only learn the rest)."""
        obs = np.asarray(obs)
        gap = obs[..., self.lead_gap]
        closing = np.maximum(-obs[..., self.lead_rel_speed], 0.0)
        out = {"collision": (gap > 0.0) & (gap <= 2.0 * closing * dt + 0.5)}
        if self.road_edges:
            lateral = np.maximum(obs[..., self.speed], 0.0) * dt * 0.3 + 0.5
            edge = obs[..., list(self.road_edges)]
            out["off_road"] = ((edge >= 0.0) & (edge <= lateral[..., None])).any(axis=-1)
        return out

    def events(self, obs: np.ndarray, prev: np.ndarray, dt: float) -> dict[str, np.ndarray]:
        """Crashes that a step from ``prev`` to ``obs`` shows by definition of its features.

        ``collision``: the lead gap closed to zero or below from a gap the closing speed
        could cover within the step (a new vehicle appearing in the lead slot at a
        negative gap is a cut-in, left to the learned models); ``off_road``: a road-edge
        distance went below zero from within one step's lateral reach of the edge
        (absent without ``road_edges``). Boolean arrays of ``obs.shape[:-1]``.
        """
        obs, prev = np.asarray(obs), np.asarray(prev)
        gap0, gap1 = prev[..., self.lead_gap], obs[..., self.lead_gap]
        closing = np.maximum(-prev[..., self.lead_rel_speed], 0.0)
        reach = 2.0 * closing * dt + 0.5
        out = {"collision": (gap1 <= 0.0) & (gap0 > 0.0) & (gap0 <= reach)}
        if self.road_edges:
            edges = list(self.road_edges)
            # A car leaves the road at most at about a third of its speed sideways.
            lateral = np.maximum(prev[..., self.speed], 0.0) * dt * 0.3 + 0.5
            before = prev[..., edges]
            out["off_road"] = ((obs[..., edges] < 0.0) & (before >= 0.0) & (before <= lateral[..., None])).any(axis=-1)
        return out

    def describe(self) -> dict[str, str]:
        """What each channel means, for reports."""
        return {
            "ttc": f"steps with time to collision below {self.ttc_below:g} s",
            "headway": f"steps with time headway below {self.headway_below:g} s",
        }
