"""Episodes of a log: the list, one episode's rows, its flagged steps, time to collision.

Pure functions over a driving log (DuckDB scans, so a large log is never loaded
whole); the replay and disengagement pages call them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from roadworthy.dashboards.aggregates import query

TTC_CAP = 10.0  # s, longer times to collision are shown as this (free road)


def episode_list(logs: str | Path) -> pd.DataFrame:
    """One row per episode: steps, duration (s), start source, map, scenario and event counts."""
    return query(
        logs,
        """
        SELECT CAST(episode_id AS VARCHAR) AS episode_id,
               count(*) AS steps,
               max(t) AS duration_s,
               CAST(arg_min(source, step) AS VARCHAR) AS start_source,
               CAST(any_value({map_name}) AS VARCHAR) AS map_name,
               CAST(any_value({scenario}) AS VARCHAR) AS scenario,
               sum(CAST({disengagement} AS INTEGER)) AS disengagements,
               sum(CAST({collision} AS INTEGER)) AS collisions,
               sum(CAST({off_road} AS INTEGER)) AS off_road_steps,
               sum(reward) AS undiscounted_return
        FROM {rel}
        GROUP BY episode_id
        ORDER BY episode_id
        """,
    )


def episode_rows(logs: str | Path, episode_id: str) -> pd.DataFrame:
    """All rows of one episode in step order, with ``obs`` and ``action`` as float arrays."""
    frame = query(
        logs,
        """
        SELECT CAST(episode_id AS VARCHAR) AS episode_id, step, t, CAST(source AS VARCHAR) AS source,
               obs, action, reward, {x} AS x, {y} AS y, {yaw} AS yaw, {speed} AS speed,
               CAST({map_name} AS VARCHAR) AS map_name,
               {collision} AS collision, {off_road} AS off_road, {disengagement} AS disengagement
        FROM {rel}
        WHERE CAST(episode_id AS VARCHAR) = ?
        ORDER BY step
        """,
        [str(episode_id)],
    )
    return frame


def obs_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``obs`` column as an (N, D) float64 array."""
    if frame.empty:
        return np.zeros((0, 0))
    return np.stack([np.asarray(o, dtype=np.float64) for o in frame["obs"]])


def action_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``action`` column as an (N, A) float64 array."""
    if frame.empty:
        return np.zeros((0, 0))
    return np.stack([np.asarray(a, dtype=np.float64) for a in frame["action"]])


def time_to_collision(obs: np.ndarray, obs_names) -> np.ndarray:
    """Time to collision with the vehicle ahead, s (capped at :data:`TTC_CAP`; NaN when unknown).

    Uses the simulator's ``lead_gap_m``/``lead_rel_speed_mps`` or, for CARLA imports, the
    nearest actor ahead within half a lane (``actor<k>_dx_m``, ``_dy_m``, ``_dvx_mps``).
    """
    names = list(obs_names)
    idx = {n: i for i, n in enumerate(names)}
    n = len(obs)
    if {"lead_gap_m", "lead_rel_speed_mps"} <= idx.keys():
        gap = obs[:, idx["lead_gap_m"]]
        closing = -obs[:, idx["lead_rel_speed_mps"]]
    elif "actor0_dx_m" in idx:
        ks = sorted({int(nm[5:].split("_")[0]) for nm in names if nm.startswith("actor") and nm.endswith("_dx_m")})
        gap = np.full(n, np.inf)
        closing = np.zeros(n)
        for k in ks:
            dx, dy = obs[:, idx[f"actor{k}_dx_m"]], obs[:, idx[f"actor{k}_dy_m"]]
            dvx = obs[:, idx[f"actor{k}_dvx_mps"]] if f"actor{k}_dvx_mps" in idx else np.zeros(n)
            ahead = (dx > 0) & (np.abs(dy) < 1.75) & ~((dx == 0) & (dy == 0)) & (dx < gap)
            gap = np.where(ahead, dx, gap)
            closing = np.where(ahead, -dvx, closing)
    else:
        return np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ttc = np.where(closing > 1e-3, np.maximum(gap, 0.0) / closing, np.inf)
    return np.minimum(ttc, TTC_CAP)


def action_pvalues(model, frame: pd.DataFrame) -> np.ndarray:
    """Conformal p-values of the logged actions of ``frame`` under a behaviour model."""
    if frame.empty:
        return np.zeros(0)
    return model.action_pvalues(obs_matrix(frame), action_matrix(frame))
