"""The logged transitions an evaluation needs, as arrays.

Read once (validated on the way) from a driving log: states, actions, rewards,
cost channels (``collision``, ``off_road``, ``cost_*``, and ``disengagement``),
episode structure (starts, continuation flags, steps to go), behaviour source,
scenario, map position and any logged ``behavior_logp``.

Horizon: episodes end at a time limit or in an absorbing state. The evaluation is
finite-horizon (the return of a logged episode is summed until it ends), so each row
carries the steps to go to the horizon H (the longest episode in the log), and the
Q-function takes it as an input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.contacts import ContactSpec
from roadworthy.data.dataset import LogDataset, scan_logs
from roadworthy.data.errors import UsageError
from roadworthy.data.geometry import EgoGeometry
from roadworthy.data.schema import cost_columns, cost_name
from roadworthy.data.surrogates import CHANNELS as SURROGATES
from roadworthy.data.surrogates import SurrogateSpec
from roadworthy.data.transitions import iter_transitions

if TYPE_CHECKING:
    from collections.abc import Callable

_EXTRA = ("source", "behavior_logp", "scenario", "map_name", "x", "y", "yaw", "speed", "disengagement")


@dataclass
class EvalData:
    """Arrays of a whole log (one row per logged step).

    Attributes
    ----------
    obs, next_obs : (N, D) float32
    action : (N, A) float32
    reward : (N,) float64
    costs : (N, C) float64, columns named by ``cost_names``
    cont : (N,) float32, 1 where the value of the next state continues the return
    terminal : (N,) bool, the row ended its episode in an absorbing state
    has_next : (N,) bool, ``next_obs`` is a real next state (the episode goes on)
    episode : (N,) int64, episode index; ``starts`` are the rows of step 0
    step, to_go, next_to_go : (N,) steps from the start and to the horizon
    source, scenario, map_name : (N,) object
    x, y : (N,) float64 (NaN when not logged)
    behavior_logp : (N,) float64 (NaN when not logged)
    horizon : int
    reward_range : (float, float)
    """

    obs: np.ndarray
    next_obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    costs: np.ndarray
    cost_names: list[str]
    cont: np.ndarray
    terminal: np.ndarray
    has_next: np.ndarray
    episode: np.ndarray
    episode_ids: list[str]
    starts: np.ndarray
    step: np.ndarray
    to_go: np.ndarray
    next_to_go: np.ndarray
    source: np.ndarray
    scenario: np.ndarray
    map_name: np.ndarray
    x: np.ndarray
    y: np.ndarray
    behavior_logp: np.ndarray
    horizon: int
    reward_range: tuple[float, float]
    obs_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_low: np.ndarray
    action_high: np.ndarray
    #: Surrogate safety measures declared by the log's metadata, computed from ``obs``
    #: (the last ``len(surrogate_names)`` cost channels).
    surrogate: SurrogateSpec | None = None
    surrogate_names: tuple[str, ...] = ()
    #: Control period, s.
    dt: float = 0.1
    #: (N, 4) logged ego pose x, y, yaw, speed (NaN where not logged).
    pose: np.ndarray | None = None
    #: The ego's pose against the road (:mod:`roadworthy.data.geometry`), or None, and why not.
    geometry: EgoGeometry | None = None
    geometry_reason: str = "not loaded"
    #: Channels computed from the logged poses (``lane_departure``), among ``cost_names``.
    geometry_names: tuple[str, ...] = ()
    #: Where the other road users are (:mod:`roadworthy.data.contacts`), when declared.
    contacts: ContactSpec | None = None

    @property
    def n(self) -> int:
        """Rows."""
        return len(self.reward)

    @property
    def n_episodes(self) -> int:
        """Episodes."""
        return len(self.starts)


def load_eval_data(
    logs: str | Path | LogDataset, *, on_rows: Callable[[int], None] | None = None, surrogates: bool = True
) -> EvalData:
    """Read a log into :class:`EvalData`.

    With ``surrogates`` and a log whose metadata declares its safety features
    (:mod:`roadworthy.data.surrogates`), the surrogate channels ``ttc`` and ``headway`` are added
    to the cost channels (a log's own ``cost_ttc`` or ``cost_headway`` takes precedence).

    Raises
    ------
    LogError
        For a log that breaks the contract.
    """
    ds = logs if isinstance(logs, LogDataset) else scan_logs(logs)
    meta = ds.metadata
    costs = cost_columns(ds.columns)
    extra = [c for c in (*_EXTRA, *costs) if c in ds.columns]
    parts: dict[str, list] = {}
    for tr in iter_transitions(ds, extra_columns=list(dict.fromkeys(extra))):
        for k in ("obs", "next_obs", "action", "reward", "terminal", "truncated", "step", "episode_id"):
            parts.setdefault(k, []).append(getattr(tr, k))
        for k in extra:
            parts.setdefault(k, []).append(tr.extra[k])
        if on_rows:
            on_rows(len(tr))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    n = len(cat["reward"])
    step = cat["step"].astype(np.int64)
    ep_ids, episode = np.unique(cat["episode_id"].astype(str), return_inverse=True)
    # Rows come whole-episode and sorted; starts are the step-0 rows.
    starts = np.flatnonzero(step == 0)
    lengths = np.bincount(episode)
    horizon = int(lengths.max())
    to_go = horizon - step
    last = cat["terminal"] | cat["truncated"]
    cont = np.ones(n, dtype=np.float32)
    cont[cat["terminal"]] = 0.0
    # A truncation at the horizon ends the return; one earlier (the log stopped) keeps
    # the return going, from the last state seen (next_obs repeats obs there).
    cont[cat["truncated"] & (to_go <= 1)] = 0.0
    next_to_go = np.maximum(to_go - 1, 0)
    spec = SurrogateSpec.from_metadata(meta.extra, meta.obs_names) if surrogates else None
    cost_arr, names, sur_names = _cost_channels(cat, costs, spec)
    pose = np.column_stack(
        [np.asarray(cat[c], dtype=np.float64) if c in cat else np.full(n, np.nan) for c in ("x", "y", "yaw", "speed")]
    )
    has_next = ~last
    maps = cat["map_name"].astype(object) if "map_name" in cat else np.full(n, "unknown", dtype=object)
    geometry, why = EgoGeometry.for_log(
        ds.root,
        meta.extra,
        meta.obs_names,
        meta.action_names,
        pose=pose,
        action=cat["action"],
        has_next=has_next,
        map_name=maps,
        dt=float(meta.dt),
    )
    geo_names: tuple[str, ...] = ()
    if geometry is not None and "lane_departure" not in names:
        _, q = geometry.observe(pose, geometry.map_index(maps))
        cost_arr = np.hstack([cost_arr, geometry.events(pose, q)["lane_departure"].astype(np.float64)[:, None]])
        names.append("lane_departure")
        geo_names = ("lane_departure",)

    def col(name: str, fill: float) -> np.ndarray:
        if name not in cat:
            return np.full(n, fill, dtype=object if isinstance(fill, str) else np.float64)
        v = cat[name]
        return v.astype(object) if isinstance(fill, str) else np.asarray(v, dtype=np.float64)

    reward = cat["reward"].astype(np.float64)
    lo_hi = _reward_range(meta.extra.get("reward_range"), reward)
    if not last[np.r_[starts[1:] - 1, n - 1]].all():
        raise UsageError("episodes are not contiguous in the log", "validate the log first")
    return EvalData(
        obs=cat["obs"].astype(np.float32),
        next_obs=cat["next_obs"].astype(np.float32),
        action=cat["action"].astype(np.float32),
        reward=reward,
        costs=cost_arr,
        cost_names=names,
        cont=cont,
        terminal=cat["terminal"].astype(bool),
        has_next=has_next,
        episode=episode.astype(np.int64),
        episode_ids=ep_ids.tolist(),
        starts=starts,
        step=step,
        to_go=to_go,
        next_to_go=next_to_go,
        source=col("source", "unknown"),
        scenario=col("scenario", "unknown"),
        map_name=col("map_name", "unknown"),
        x=col("x", np.nan),
        y=col("y", np.nan),
        behavior_logp=col("behavior_logp", np.nan),
        horizon=horizon,
        reward_range=lo_hi,
        obs_names=meta.obs_names,
        action_names=meta.action_names,
        action_low=np.asarray(meta.action_low),
        action_high=np.asarray(meta.action_high),
        surrogate=spec,
        surrogate_names=sur_names,
        dt=float(meta.dt),
        pose=pose,
        geometry=geometry,
        geometry_reason=why,
        geometry_names=geo_names,
        contacts=ContactSpec.from_metadata(meta.extra, meta.obs_names),
    )


def _cost_channels(cat: dict, costs: list[str], spec: SurrogateSpec | None) -> tuple[np.ndarray, list[str], tuple]:
    """(N, C) cost channels: the log's cost columns, disengagement, then the surrogates not logged."""
    n = len(cat["reward"])
    cost_arr = np.zeros((n, len(costs) + ("disengagement" in cat)))
    names = []
    for j, c in enumerate(costs):
        cost_arr[:, j] = np.nan_to_num(np.asarray(cat[c], dtype=np.float64))
        names.append(cost_name(c))
    if "disengagement" in cat:
        cost_arr[:, -1] = np.asarray(cat["disengagement"], dtype=np.float64)
        names.append("disengagement")
    sur_names: tuple[str, ...] = ()
    if spec is not None:
        keep = [j for j, c in enumerate(SURROGATES) if c not in names]
        sur_names = tuple(SURROGATES[j] for j in keep)
        if keep:
            cost_arr = np.hstack([cost_arr, spec.costs(cat["obs"])[:, keep]])
            names.extend(sur_names)
    return cost_arr, names, sur_names


def _reward_range(declared: str | None, reward: np.ndarray) -> tuple[float, float]:
    """The log's declared ``reward_range`` (JSON [lo, hi]), else the logged rewards' range."""
    try:
        if declared:
            lo, hi = (float(v) for v in json.loads(declared))
            return lo, hi
    except (json.JSONDecodeError, TypeError, ValueError):
        pass
    return float(reward.min()), float(reward.max())
