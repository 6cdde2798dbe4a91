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
                                  "no_lead_gap": 100.0}

``speed`` (m/s), ``lead_gap`` (bumper to bumper, m) and ``lead_rel_speed`` (the lead's
speed minus ours, m/s) name obs entries; ``no_lead_gap`` is the gap the features report
when there is no vehicle ahead (optional). Other keys are ignored (earlier logs declared
``road_edges`` here; road departures now follow from the pose and the map,
:mod:`roadworthy.data.geometry`, and contacts from :mod:`roadworthy.data.contacts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from roadworthy.data.errors import UsageError, declared_json

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
        hint = (
            'write e.g. {"speed": "speed_mps", "lead_gap": "lead_gap_m", "lead_rel_speed": "lead_rel_speed_mps"} '
            "naming obs entries (see docs/formats.md)"
        )
        spec = declared_json(extra, META_KEY, hint)
        if spec is None:
            return None
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
        return cls(
            **cols,
            no_lead_gap=float(no_lead),
            ttc_below=ttc_below,
            headway_below=headway_below,
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

    def describe(self) -> dict[str, str]:
        """What each channel means, for reports."""
        return {
            "ttc": f"steps with time to collision below {self.ttc_below:g} s",
            "headway": f"steps with time headway below {self.headway_below:g} s",
        }
