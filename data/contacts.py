"""Contact with other road users, from the features that place them (contract v1.1 proposal).

A collision is a fact of where two boxes are, as leaving the road is a fact of where
the ego is. Where a log says which features place the other road users relative to
the ego (metadata ``roadworthy.contacts``), an evaluator can tell from any state,
logged or simulated, whether the ego's box touches another one, instead of learning
collisions from the handful a log holds.

Two layouts are understood (JSON; every key but one of ``slots``/``actors`` optional)::

    {"vehicle_m": [5.0, 2.0], "lane_offset": "lane_offset_m", "heading_error": "heading_error_rad",
     "absent_gap_m": 100.0,
     "slots": [{"gap": "lead_gap_m", "position": "ahead", "lateral_m": 0.0,
                "rel_speed": "lead_rel_speed_mps"},
               {"gap": "left_follow_gap_m", "position": "behind", "lateral_m": -4.0}]}

    {"vehicle_m": [4.5, 2.0], "absent_dx_m": 50.0,
     "actors": [{"dx": "actor0_dx_m", "dy": "actor0_dy_m"}]}

* ``slots`` (lane-based sensing, the embedded simulator): the bumper-to-bumper gap to
  the nearest vehicle ahead or behind in the ego's lane (``lateral_m`` 0) or a lane
  beside it (``lateral_m``: that lane's centre, m, + right of the ego lane's centre).
  The other vehicle is taken at that lane's centre, aligned with it; the ego's box
  stands at its lane offset and heading error. ``absent_gap_m``: the gap that means no
  vehicle. Given the states a step before, a slot counts as touching only if it holds
  the same vehicle as then (its gap moved as its closing speed, ``rel_speed``, says,
  within 1 m): a learned model's jump of which vehicle is nearest is not a crash.
* ``actors`` (the CARLA import): each actor's centre in the ego frame (m, forward and
  right); boxes aligned with the ego's. ``absent_dx_m``: the forward offset that means
  no actor.

``vehicle_m``: length and width of every box, m. Boxes touch when they overlap
(separating-axis test on the rotated rectangles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from roadworthy.data.errors import UsageError, declared_json

META_KEY = "contacts"
_HINT = "see docs/formats.md, 'contract v1.1 proposal'"


@dataclass(frozen=True)
class Slot:
    """One lane slot: columns of its gap (and closing speed), where it is, m."""

    gap: int
    ahead: bool
    lateral: float
    rel_speed: int | None = None


def boxes_overlap(
    ego_y: np.ndarray, ego_yaw: np.ndarray, other_x: np.ndarray, other_y: np.ndarray, length: float, width: float
) -> np.ndarray:
    """Whether the ego's box (centre (0, ego_y), heading ego_yaw) overlaps another box of the same
    size (centre (other_x, other_y), heading 0): the separating-axis test on both boxes' axes."""
    c, s = np.abs(np.cos(ego_yaw)), np.abs(np.sin(ego_yaw))
    hl, hw = length / 2, width / 2
    dx, dy = other_x, other_y - ego_y
    # The other box's axes (the frame's).
    sep = (np.abs(dx) > hl * c + hw * s + hl) | (np.abs(dy) > hl * s + hw * c + hw)
    # The ego's axes.
    cs, sn = np.cos(ego_yaw), np.sin(ego_yaw)
    along, across = np.abs(dx * cs + dy * sn), np.abs(-dx * sn + dy * cs)
    sep |= (along > hl + hl * c + hw * s) | (across > hw + hl * s + hw * c)
    return ~sep


@dataclass(frozen=True)
class ContactSpec:
    """A log's declaration of where other road users are (module docstring), with obs indices."""

    length: float
    width: float
    slots: tuple[Slot, ...] = ()
    actors: tuple[tuple[int, int], ...] = ()
    offset: int | None = None
    heading: int | None = None
    absent_gap: float = np.inf
    absent_dx: float = np.inf

    @classmethod
    def from_metadata(cls, extra: Mapping[str, str], obs_names: Sequence[str]) -> ContactSpec | None:
        """The declaration of a log, or None when it has none.

        Raises
        ------
        UsageError
            For a declaration that is not valid JSON or names obs entries the log lacks.
        """
        spec = declared_json(extra, META_KEY, _HINT)
        if spec is None:
            return None
        index = {n: i for i, n in enumerate(obs_names)}

        def col(name, what: str) -> int:
            if name not in index:
                raise UsageError(f"metadata roadworthy.{META_KEY}: {what} names {name!r}, not an obs entry", _HINT)
            return index[name]

        try:
            length, width = (float(v) for v in spec.get("vehicle_m", [4.5, 2.0]))
            slots = tuple(
                Slot(
                    gap=col(s["gap"], "a slot's gap"),
                    ahead=s.get("position", "ahead") == "ahead",
                    lateral=float(s.get("lateral_m", 0.0)),
                    rel_speed=col(s["rel_speed"], "a slot's rel_speed") if "rel_speed" in s else None,
                )
                for s in spec.get("slots", [])
            )
            actors = tuple(
                (col(a["dx"], "an actor's dx"), col(a["dy"], "an actor's dy")) for a in spec.get("actors", [])
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UsageError(f"metadata roadworthy.{META_KEY} is malformed ({exc})", _HINT) from None
        if not slots and not actors:
            raise UsageError(f"metadata roadworthy.{META_KEY} declares neither slots nor actors", _HINT)
        if slots and ("lane_offset" not in spec or "heading_error" not in spec):
            raise UsageError(f"metadata roadworthy.{META_KEY}: slots need lane_offset and heading_error", _HINT)
        return cls(
            length=length,
            width=width,
            slots=slots,
            actors=actors,
            offset=col(spec["lane_offset"], "lane_offset") if slots else None,
            heading=col(spec["heading_error"], "heading_error") if slots else None,
            absent_gap=float(spec.get("absent_gap_m", np.inf)),
            absent_dx=float(spec.get("absent_dx_m", np.inf)),
        )

    def touching(
        self, obs: np.ndarray, prev: np.ndarray | None = None, dt: float = 0.1, *, at_fault: bool = False
    ) -> np.ndarray:
        """Whether the ego's box touches another road user's in each state (bool, ``obs.shape[:-1]``).

        ``prev`` (the states one step before) enables the same-vehicle condition of slots
        (module docstring). ``at_fault`` leaves out being rear-ended by the vehicle behind in
        the ego's own lane, which nuPlan's ``no_ego_at_fault_collisions`` does not count
        against the ego (an active rear collision); a vehicle behind in a lane beside can
        only be touched while the ego straddles lanes, which counts.
        """
        obs = np.asarray(obs, dtype=np.float64)
        hit = np.zeros(obs.shape[:-1], dtype=bool)
        if self.slots:
            y, yaw = obs[..., self.offset], obs[..., self.heading]
            for s in self.slots:
                if at_fault and s.lateral == 0.0 and not s.ahead:
                    continue  # rear-ended in its own lane: not the ego's doing (nuPlan's ACTIVE_REAR)
                gap = obs[..., s.gap]
                x = (gap + self.length) * (1.0 if s.ahead else -1.0)
                touch = (gap < self.absent_gap - 1e-3) & boxes_overlap(y, yaw, x, s.lateral, self.length, self.width)
                if prev is not None:
                    # The same vehicle as a step before: its gap moved as its closing speed says.
                    g0 = np.asarray(prev, dtype=np.float64)[..., s.gap]
                    rel = np.asarray(prev, dtype=np.float64)[..., s.rel_speed] if s.rel_speed is not None else 0.0
                    expected = g0 + (rel if s.ahead else -rel) * dt
                    touch &= (g0 < self.absent_gap - 1e-3) & (np.abs(gap - expected) <= 1.0 + 0.5 * np.abs(rel) * dt)
                hit |= touch
        for dx_col, dy_col in self.actors:
            dx, dy = obs[..., dx_col], obs[..., dy_col]
            present = dx < self.absent_dx - 1e-3
            hit |= present & (np.abs(dx) < self.length) & (np.abs(dy) < self.width)
        return hit

    def one_step_ahead(self, obs: np.ndarray, dt: float) -> np.ndarray:
        """States one step on with every slot's gap moved by its closing speed (the other
        features unchanged): where a logged crash row's gaps were heading."""
        out = np.array(obs, dtype=np.float64, copy=True)
        for s in self.slots:
            if s.rel_speed is None:
                continue
            g, rel = out[..., s.gap], out[..., s.rel_speed]
            moved = g + (rel if s.ahead else -rel) * dt
            out[..., s.gap] = np.where(g < self.absent_gap - 1e-3, moved, g)
        return out
