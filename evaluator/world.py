"""The simulated world of a log: what is computed, what is learned, and one step of both.

A rollout state is the policy's features (``obs``) and, where the log declares what it
needs (:mod:`roadworthy.data.geometry`), the ego's pose. One step:

1. the ego's next pose follows from the action by the log's kinematics (declared or
   fitted), and the features that are functions of the pose (speed, lane offset,
   heading error, distances to the road's edges, ...) are computed from it and the map;
2. the learned model (:class:`~roadworthy.evaluator.model_based.DrivingModel`) draws every
   other feature (the other road users) *given* the computed ones, the reward, and the
   chance of events it has to learn;
3. the cost channels of the step, by one rule for every caller (rollouts, held-out
   checks, the danger check, per-cell costs):

   * ``off_road`` and ``lane_departure``: the pose against the road, computed;
   * ``collision``: the ego's box touching another road user's, placed by the features
     (:meth:`roadworthy.data.contacts.ContactSpec.touching`), computed (at fault, as nuPlan
     counts them); the logged collisions the rule does not reproduce are reported, not
     learned: a classifier of a handful of them would charge every policy the fleet's
     crash rate;
   * ``ttc``, ``headway``: surrogate measures of the state, computed;
   * everything else (``disengagement``, ``cost_*`` columns, and any crash channel the
     log gives no geometry for): learned from the logged events.

   A crash that a computed rule detects ends the episode, as a learned termination
   does; a crash channel counts what it names, whichever rule detected it.

:attr:`World.channels` says for every channel how it was obtained and, for learned ones,
from how many logged events: the report prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.surrogates import CHANNELS as SURROGATES
from roadworthy.evaluator.logdata import EvalData

if TYPE_CHECKING:
    from roadworthy.data.road_geometry import RoadQuery
    from roadworthy.evaluator.model_based import DrivingModel

#: How the ego's slots are refilled when it changes lanes (see :meth:`World._follow_lane_change`).
LANE_CHANGE = ("learned", "kinematic")

#: Crash channels that a rule computed from the state can detect.
CRASHES = ("collision", "off_road")


@dataclass(frozen=True)
class Channel:
    """How one cost channel is obtained in the simulated world.

    Attributes
    ----------
    name : str
    kind : {"computed", "learned"}
    how : str
        One sentence for the report.
    events : int
        Logged rows with this cost (what a learned part was learned from).
    learned : int or None
        Index into the model's learned event channels.
    surrogate : int or None
        Index into the surrogate measures (ttc, headway).
    geometric : bool
        Computed from the pose against the road.
    contact_rule : bool
        Detected from the ego's box touching another road user's.
    once : bool
        A crash: ends the episode, counts once.
    cost_max : float
        Largest per-step cost.
    """

    name: str
    kind: str
    how: str
    events: int
    learned: int | None = None
    surrogate: int | None = None
    geometric: bool = False
    contact_rule: bool = False
    once: bool = False
    cost_max: float = 1.0

    def to_dict(self) -> dict:
        """For reports."""
        out = {"kind": self.kind, "how": self.how, "logged_events": self.events}
        if "learned" in self.kind:
            out["learned_from_events"] = self.events
        return out


@dataclass
class State:
    """Rollout states: features (E, M, D), poses (E, M, 4) or None, map index (M,)."""

    obs: np.ndarray
    pose: np.ndarray | None
    maps: np.ndarray | None
    #: Road query of the current poses (for the current step's lane departure).
    road: object | None = None
    #: (E, M, D_learned) the learned features' change over the previous step, or None.
    history: np.ndarray | None = None


def explained_events(data: EvalData, rule_crashes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Logged rows whose event on a crash channel a computed rule explains (bool per row).

    ``collision``: one step on from the row (the pose by the kinematics, the gaps by their
    closing speeds), the ego's box touches another road user's
    (:meth:`~roadworthy.data.contacts.ContactSpec.touching`); ``off_road``: the pose the logged
    action leads to is off the road. The learned event models learn the rest.
    """
    out: dict[str, np.ndarray] = {}
    geo = data.geometry
    known: dict[int, np.ndarray] = {}
    if geo is not None:
        maps = geo.map_index(data.map_name)
        nxt = geo.step(data.pose, data.action)
        known, q = geo.observe(nxt, maps, data.pose[:, 3])
        if "off_road" in rule_crashes:
            out["off_road"] = geo.events(nxt, q)["off_road"]
    if data.contacts is not None and "collision" in rule_crashes:
        ahead = data.contacts.one_step_ahead(data.obs, data.dt)
        for j, v in known.items():
            ahead[:, j] = v
        out["collision"] = data.contacts.touching(ahead, data.obs, data.dt, at_fault=True)
    return out


class World:
    """One learned driving model and everything computed around it, for one log.

    Parameters
    ----------
    model : DrivingModel
        Fitted with ``computed`` = the geometry's feature columns.
    data : EvalData
    rule_crashes : tuple of str
        Crash channels detected by computed rules (default both).
    """

    def __init__(
        self,
        model: DrivingModel,
        data: EvalData,
        rule_crashes: tuple[str, ...] = CRASHES,
        lane_change: str = "learned",
    ) -> None:
        if lane_change not in LANE_CHANGE:
            raise ValueError(f"lane_change must be one of {LANE_CHANGE}, got {lane_change!r}")
        self.lane_change = lane_change
        self.model, self.data = model, data
        self.geometry = data.geometry
        self.surrogate = data.surrogate
        self.contacts = data.contacts
        self.rule_crashes = rule_crashes
        self.explained = explained_events(data, rule_crashes)
        self.channels = self._channels()
        self.shifts = self._slot_shifts()

    def _slot_shifts(self) -> dict[float, list[tuple[tuple[int, int], tuple[int, int], int]]]:
        """For an ego lane change by ``lateral`` metres: which slot's (gap, closing speed) columns
        the vehicles of each slot come from, with the slots' direction (+1 ahead, -1 behind).
        When the ego moves into the lane on its right, the vehicle ahead in that lane *is* its new
        lead; the features' definitions say so, the learned model need not guess it."""
        if self.contacts is None or self.geometry is None or not self.contacts.slots:
            return {}
        slots = {(s.ahead, s.lateral): s for s in self.contacts.slots if s.rel_speed is not None}
        laterals = sorted({lat for _, lat in slots if lat != 0.0})
        out = {}
        for shift in laterals:
            pairs = []
            for (ahead, lat), dst in slots.items():
                src = slots.get((ahead, lat + shift))
                if src is not None:
                    pairs.append(((dst.gap, dst.rel_speed), (src.gap, src.rel_speed), 1 if ahead else -1))
            if pairs:
                out[shift] = pairs
        return out

    # -- channels --------------------------------------------------------------------
    def _channels(self) -> list[Channel]:
        data, model = self.data, self.model
        out = []
        term = data.terminal
        for j, name in enumerate(data.cost_names):
            col = data.costs[:, j]
            hit = col > 0
            events = int(hit.sum())
            once = bool(name in model.learned and hit.any() and term[hit].all())
            learned = model.learned.index(name) if name in model.learned else None
            common = {
                "events": events,
                "learned": learned,
                "cost_max": max(float(col.max()) if len(col) else 1.0, 1.0),
            }
            if name in data.surrogate_names:
                how = self.surrogate.describe()[name] + ", computed from the simulated features"
                out.append(Channel(name, "computed", how, surrogate=SURROGATES.index(name), **common))
            elif name in data.geometry_names:
                how = self.geometry.describe()["lane_departure_rule"] + "; computed from the simulated pose and the map"
                out.append(Channel(name, "computed", how, geometric=True, **common))
            elif name == "off_road" and "off_road" in self.explained:
                how = (
                    self.geometry.describe()["off_road_rule"]
                    + "; computed from the simulated pose (kinematics from the action) and the map"
                    + self._explains(name, hit)
                )
                out.append(Channel(name, "computed", how, geometric=True, once=True, **common))
            elif name == "collision" and "collision" in self.explained:
                how = (
                    "at-fault contact: the ego's box touching another road user's, placed by the simulated "
                    "features (data.contacts); being rear-ended in its own lane is left out, as nuPlan does"
                    + self._explains(name, hit)
                )
                out.append(Channel(name, "computed", how, contact_rule=True, once=True, **common))
            else:
                reason = f" ({data.geometry_reason})" if name == "off_road" and self.geometry is None else ""
                how = f"learned from {events} logged event(s){reason}"
                out.append(Channel(name, "learned", how, once=once, **common))
        return out

    def _explains(self, name: str, hit: np.ndarray) -> str:
        """How many logged events the rule reproduces from the row before (said in the report)."""
        rows = hit & self.data.terminal if (hit & self.data.terminal).any() else hit
        n, k = int(rows.sum()), int((rows & self.explained[name]).sum())
        if n == 0:
            return "; no logged event to compare with"
        return (
            f"; the rule reproduces {k} of the {n} logged events one step ahead, the others happened in ways "
            "the features do not show and are not simulated"
        )

    def _follow_lane_change(self, nxt: np.ndarray, prev: np.ndarray, before: RoadQuery, after: RoadQuery) -> None:
        """Where the ego changed lanes this step, its slots hold the vehicles of the slots they now
        are (in place on ``nxt``, (E, M, D); ``prev``: the states a step before).

        ``lane_change="learned"`` (the default): each slot takes the learned model's draw of the
        slot it now is. The draws at a lane crossing are poor (the logs' slot features jump
        there, and a mixture of such jumps can place a vehicle on top of the ego: on the reporting
        benchmark a third of a safe policy's simulated collisions), but they also stand in for
        the real risk of a lane change that the at-fault rule leaves out (being rear-ended just
        after cutting in). The kinematic mode below removes the artefact and with it that risk:
        on the reporting benchmark it passed ``creeper`` (true collision rate 0.048, estimated
        0.013), a false acceptance. It stays an option until the fault rule counts cut-ins.

        ``lane_change="kinematic"``: each such vehicle moves on from where it was by its own
        speed (the other vehicles do not answer to the ego's lane change; the ego's speed change
        is computed), and a slot that looks into a lane the ego did not see before starts empty:
        the learned model draws any vehicle that appears there in the steps that follow.
        """
        e, m, _ = nxt.shape
        moved = (before.lane != after.lane).reshape(e, m)
        if not moved.any():
            return
        lateral = (before.offset - after.offset).reshape(e, m)
        if self.lane_change == "learned":
            drawn = nxt.copy()
            for shift, pairs in self.shifts.items():
                rows = moved & (np.abs(lateral - shift) < abs(shift) / 2)
                for (g, r), (sg, sr), _ in pairs if rows.any() else ():
                    nxt[..., g] = np.where(rows, drawn[..., sg], nxt[..., g])
                    nxt[..., r] = np.where(rows, drawn[..., sr], nxt[..., r])
            return
        absent, dt = self.contacts.absent_gap, self.data.dt
        speed = self.geometry.spec.features.get("speed")
        dv_ego = nxt[..., speed] - prev[..., speed] if speed is not None else 0.0
        every = {(s.gap, s.rel_speed) for s in self.contacts.slots if s.rel_speed is not None}
        for shift, pairs in self.shifts.items():
            rows = moved & (np.abs(lateral - shift) < abs(shift) / 2)
            if not rows.any():
                continue
            for (g, r), (sg, sr), sign in pairs:
                present = prev[..., sg] < absent - 1e-3
                rel = prev[..., sr] - dv_ego
                gap = prev[..., sg] + sign * dt * (prev[..., sr] + rel) / 2
                nxt[..., g] = np.where(rows, np.where(present, gap, absent), nxt[..., g])
                nxt[..., r] = np.where(rows, np.where(present, rel, 0.0), nxt[..., r])
            for g, r in every - {dst for dst, _, _ in pairs}:
                nxt[..., g] = np.where(rows, absent, nxt[..., g])
                nxt[..., r] = np.where(rows, 0.0, nxt[..., r])

    def describe(self) -> dict:
        """The report's ``channels`` block and the geometry behind it."""
        out = {"channels": {c.name: c.to_dict() for c in self.channels}}
        if self.geometry is not None:
            out["geometry"] = self.geometry.describe() | {
                "computed_features": [self.data.obs_names[j] for j in self.geometry.spec.columns]
            }
        else:
            out["geometry"] = {"available": False, "reason": self.data.geometry_reason}
        return out

    # -- states ----------------------------------------------------------------------
    def start(self, rows: np.ndarray, heads: int) -> State:
        """States at logged rows, the same in every member: (E, M, ...)."""
        data = self.data
        obs = np.broadcast_to(data.obs[rows].astype(np.float64), (heads, len(rows), data.obs.shape[1])).copy()
        history = None
        if self.model.uses_history:
            h = self.model.previous_change(data, rows)
            history = np.broadcast_to(h, (heads, *h.shape)).copy()
        if self.geometry is None:
            return State(obs, None, None, history=history)
        pose = np.broadcast_to(data.pose[rows], (heads, len(rows), 4)).copy()
        maps = self.geometry.map_index(data.map_name[rows])
        return State(obs, pose, maps, history=history)

    def _road(self, pose: np.ndarray, maps: np.ndarray, prev_speed: np.ndarray | None = None) -> dict[str, np.ndarray]:
        e, m = pose.shape[:2]
        vals, q = self.geometry.observe(pose.reshape(-1, 4), np.tile(maps, e), prev_speed)
        return {j: v.reshape(e, m) for j, v in vals.items()}, q

    # -- one step --------------------------------------------------------------------
    def step(
        self, st: State, act: np.ndarray, u: np.ndarray, normals: np.ndarray, outside: np.ndarray | None = None
    ) -> tuple[State, np.ndarray, np.ndarray, np.ndarray]:
        """One step of every member from states ``st`` under actions (E, M, A).

        ``outside`` (E, M) marks states outside the logged state support: there the
        learned event probabilities count at least at their logged base rates.

        Returns
        -------
        next State, reward (E, M) of a step that goes on, p_end (E, M) the chance the step
        ends the episode, costs (E, M, C) of the step in :attr:`channels` order.
        """
        e, m, _ = st.obs.shape
        known, q_next, pose_next, events = None, None, None, {}
        if self.geometry is not None:
            if st.road is None:
                _, st.road = self._road(st.pose, st.maps)
            pose_next = self.geometry.step(st.pose.reshape(-1, 4), act.reshape(e * m, -1)).reshape(e, m, 4)
            known, q_next = self._road(pose_next, st.maps, st.pose[..., 3].reshape(-1))
            events = {k: v.reshape(e, m) for k, v in self.geometry.events(pose_next.reshape(-1, 4), q_next).items()}
        nxt, r, p_end, c_learned = self.model.step(st.obs, act, u, normals, known, st.history)
        if self.shifts and q_next is not None:
            self._follow_lane_change(nxt, st.obs, st.road, q_next)
        if outside is not None:
            # Rare events are learnt from a handful of logged ones: outside the logged
            # states the classifiers extrapolate, so there they count at their base rate.
            p_end = np.where(outside, np.maximum(p_end, self.model.base_rates[0]), p_end)
            c_learned = np.where(outside[..., None], np.maximum(c_learned, self.model.base_rates[1:]), c_learned)
        if self.contacts is not None:
            events["collision"] = self.contacts.touching(nxt, st.obs, self.data.dt, at_fault=True)
        cost = np.zeros((e, m, len(self.channels)))
        for i, ch in enumerate(self.channels):
            if ch.learned is not None:
                cost[..., i] = c_learned[..., ch.learned]
        if self.surrogate is not None:
            sur = self.surrogate.costs(st.obs.reshape(e * m, -1)).reshape(e, m, -1)
        ended = np.zeros((e, m))
        for i, ch in enumerate(self.channels):
            if ch.surrogate is not None:
                cost[..., i] = sur[..., ch.surrogate]
            elif ch.name == "lane_departure" and ch.geometric:
                cost[..., i] = self.geometry.events(st.pose.reshape(-1, 4), st.road)["lane_departure"].reshape(e, m)
            elif (ch.geometric or ch.contact_rule) and ch.once:
                hit = events[ch.name].astype(np.float64)
                cost[..., i] = 1 - (1 - cost[..., i]) * (1 - hit)
                ended = 1 - (1 - ended) * (1 - hit)
        p_end = 1 - (1 - p_end) * (1 - ended)
        history = self.model.change(st.obs, nxt) if self.model.uses_history else None
        return State(nxt, pose_next, st.maps, q_next, history), r, p_end, cost
