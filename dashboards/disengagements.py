"""Disengagement explorer: what preceded each takeover, against matched moments without one.

A takeover is a row with ``disengagement`` set (the first human step after the
autopilot). For each, the ``window_s`` seconds before it: speed, time to collision
with the vehicle ahead, and (with a behaviour model) the conformal p-value of the
logged action, i.e. how unusual the autopilot's behaviour was. Controls are
autopilot moments from episodes without any takeover, matched on speed (and on map
and scenario where the log has them), so that a difference in the windows is not
just a difference in where and how fast the car was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from roadworthy.dashboards.aggregates import query
from roadworthy.dashboards.episodes import TTC_CAP, action_pvalues, obs_matrix, time_to_collision
from roadworthy.data.dataset import scan_logs


def takeover_events(logs: str | Path) -> pd.DataFrame:
    """One row per takeover: ``episode_id, step, t, from_source`` (who drove the step before:
    ``autopilot``, or another autopilot's source name; ``autopilot`` for a takeover on an
    episode's first step, as the log contract defines a disengagement), ``map_name, scenario,
    speed, x, y``."""
    return query(
        logs,
        """
        SELECT * EXCLUDE (taken) FROM (
            SELECT CAST(episode_id AS VARCHAR) AS episode_id, step, t,
                   coalesce(CAST(lag(source) OVER (PARTITION BY episode_id ORDER BY step) AS VARCHAR), 'autopilot')
                       AS from_source,
                   CAST({map_name} AS VARCHAR) AS map_name, CAST({scenario} AS VARCHAR) AS scenario,
                   {speed} AS speed, {x} AS x, {y} AS y, {disengagement} AS taken
            FROM {rel}
        )
        WHERE taken
        ORDER BY episode_id, step
        """,
    )


def matched_controls(
    logs: str | Path, events: pd.DataFrame, *, window_steps: int, per_event: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Moments without a takeover, ``per_event`` per takeover, nearest in speed.

    Candidates: rows driven by a source that drove before some takeover (``autopilot`` on
    the simulator), at least ``window_steps`` into episodes that have no takeover at all
    (a random subsample of at most 200 per takeover, seeded). Matching is without
    replacement, within the same source, map and scenario when possible, else the same
    source.
    """
    if events.empty:
        return events.assign(match_of=pd.Series(dtype="int64"))
    n = int(min(200 * len(events), 200_000))
    sources = sorted(events["from_source"].unique())
    cand = query(
        logs,
        f"""
        WITH clean AS (
            SELECT episode_id FROM {{rel}} GROUP BY episode_id HAVING NOT bool_or({{disengagement}})
        )
        SELECT CAST(r.episode_id AS VARCHAR) AS episode_id, r.step, r.t,
               CAST(r.source AS VARCHAR) AS source,
               CAST({{map_name}} AS VARCHAR) AS map_name, CAST({{scenario}} AS VARCHAR) AS scenario,
               {{speed}} AS speed, {{x}} AS x, {{y}} AS y
        FROM {{rel}} r JOIN clean USING (episode_id)
        WHERE list_contains(?, CAST(r.source AS VARCHAR)) AND r.step >= {int(window_steps)}
        ORDER BY r.episode_id, r.step
        """,
        [sources],
    )
    if cand.empty:
        return cand.assign(match_of=pd.Series(dtype="int64"))
    rng = np.random.default_rng(seed)
    if len(cand) > n:
        cand = cand.iloc[np.sort(rng.choice(len(cand), n, replace=False))].reset_index(drop=True)
    used = np.zeros(len(cand), dtype=bool)
    picks, of = [], []
    speed = cand["speed"].to_numpy(dtype=float)
    for i, ev in events.reset_index(drop=True).iterrows():
        source = cand["source"].to_numpy() == ev["from_source"]
        same = (
            source & (cand["map_name"].to_numpy() == ev["map_name"]) & (cand["scenario"].to_numpy() == ev["scenario"])
        )
        pool = np.flatnonzero(same & ~used)
        if len(pool) < per_event:
            pool = np.flatnonzero(source & ~used)
        d = np.abs(np.nan_to_num(speed[pool], nan=1e9) - (ev["speed"] if pd.notna(ev["speed"]) else 0.0))
        # Ties broken at random, so that controls do not all come from the first episodes.
        order = np.lexsort((rng.random(len(pool)), d))[:per_event]
        chosen = pool[order]
        used[chosen] = True
        picks += chosen.tolist()
        of += [i] * len(chosen)
    return cand.iloc[picks].assign(match_of=of).reset_index(drop=True)


def window_features(
    logs: str | Path, anchors: pd.DataFrame, *, window_steps: int, model=None, group: str = ""
) -> pd.DataFrame:
    """The rows of the ``window_steps`` steps up to each anchor, with features.

    Returns
    -------
    pandas.DataFrame
        ``anchor`` (index in ``anchors``), ``group``, ``rel_step`` (<= 0), ``episode_id``,
        ``step``, ``speed`` (m/s), ``ttc_s`` (s, capped), and ``pvalue`` with a model.
    """
    cols = ["anchor", "group", "rel_step", "episode_id", "step", "speed", "ttc_s", "pvalue"]
    if anchors.empty:
        return pd.DataFrame(columns=cols)
    a = anchors[["episode_id", "step"]].reset_index(drop=True).assign(anchor=np.arange(len(anchors)))
    frame = query(
        logs,
        f"""
        SELECT an.anchor, r.step - an.step AS rel_step, CAST(r.episode_id AS VARCHAR) AS episode_id,
               r.step, {{speed}} AS speed, r.obs, r.action
        FROM {{rel}} r JOIN anchors an
          ON CAST(r.episode_id AS VARCHAR) = an.episode_id
         AND r.step BETWEEN an.step - {int(window_steps)} AND an.step
        ORDER BY an.anchor, r.step
        """,
        tables={"anchors": a},
    )
    meta = scan_logs(logs).metadata
    obs = obs_matrix(frame)
    frame["ttc_s"] = time_to_collision(obs, meta.obs_names) if len(frame) else []
    if frame["speed"].isna().all() and "speed_mps" in meta.obs_names and len(frame):
        frame["speed"] = obs[:, list(meta.obs_names).index("speed_mps")]
    frame["pvalue"] = action_pvalues(model, frame) if model is not None and len(frame) else np.nan
    frame["group"] = group
    return frame[cols]


def explore(logs: str | Path, *, window_s: float = 3.0, per_event: int = 3, model=None, seed: int = 0) -> dict:
    """Everything the page shows: events, controls, window features of both, dt.

    Returns
    -------
    dict
        ``events``, ``controls`` (DataFrames of anchors), ``windows`` (long DataFrame of
        both groups: ``group`` is ``takeover`` or ``matched``), ``dt`` (s), ``window_steps``.
    """
    dt = float(scan_logs(logs).metadata.dt)
    w = max(1, round(window_s / dt))
    events = takeover_events(logs)
    controls = matched_controls(logs, events, window_steps=w, per_event=per_event, seed=seed)
    win = pd.concat(
        [
            window_features(logs, events, window_steps=w, model=model, group="takeover"),
            window_features(logs, controls, window_steps=w, model=model, group="matched"),
        ],
        ignore_index=True,
    )
    win["t_rel_s"] = win["rel_step"].astype(float) * dt
    return {"events": events, "controls": controls, "windows": win, "dt": dt, "window_steps": w}


def window_summary(windows: pd.DataFrame, feature: str) -> pd.DataFrame:
    """Mean of ``feature`` per group and time before the anchor, with a 95 % normal interval."""
    if windows.empty:
        return pd.DataFrame(columns=["group", "t_rel_s", "mean", "lower", "upper", "n"])
    g = windows.dropna(subset=[feature]).groupby(["group", "t_rel_s"])[feature]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    half = 1.96 * out["std"].fillna(0.0) / np.sqrt(out["n"].clip(lower=1))
    out["lower"], out["upper"] = out["mean"] - half, out["mean"] + half
    return out.drop(columns=["std"])


def contrast(windows: pd.DataFrame, *, last_s: float = 1.0) -> pd.DataFrame:
    """Takeovers against matched moments over the last ``last_s`` seconds before the anchor.

    Per feature: mean in each group, difference and its 95 % interval (Welch, on the
    per-anchor means, so rows of one window are not counted as independent).
    """
    rows = []
    recent = windows[windows["t_rel_s"] >= -last_s]
    for feat in ("speed", "ttc_s", "pvalue"):
        per = recent.dropna(subset=[feat]).groupby(["group", "anchor"])[feat].mean()
        a = per.get("takeover", pd.Series(dtype=float))
        b = per.get("matched", pd.Series(dtype=float))
        if len(a) < 2 or len(b) < 2:
            continue
        diff = a.mean() - b.mean()
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        rows.append(
            {
                "feature": feat,
                "takeover": a.mean(),
                "matched": b.mean(),
                "difference": diff,
                "lower": diff - 1.96 * se,
                "upper": diff + 1.96 * se,
                "takeovers": len(a),
                "matched_moments": len(b),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["TTC_CAP", "contrast", "explore", "matched_controls", "takeover_events", "window_features"]
