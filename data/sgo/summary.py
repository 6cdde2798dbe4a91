"""``roadworthy sgo summary``: crashes (distinct incidents) per group, with exact intervals.

A group's ``share`` is of all incidents in the table, with its exact (Clopper-Pearson) 95 %
interval; ``severe`` counts the serious and fatal ones, with the exact interval of their
share within the group. Grouped by ``entity``, an incident reported by two entities counts
once in each entity's group, so the shares add up to more than 1.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy import stats

from roadworthy.data.errors import UsageError

#: ``--by`` name -> incidents column (lists are exploded: one row per value).
GROUPS = {
    "entity": "entities_raw",
    "operator": "operator",
    "maker": "maker",
    "state": "state",
    "month": "month",
    "year": "year",
    "severity": "severity",
    "partner": "partner",
    "movement": "sv_movement",
    "partner_movement": "cp_movement",
    "roadway": "roadway_type",
    "system": "system",
}


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion from ``k`` of ``n``."""
    if n == 0:
        return 0.0, 1.0
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def load_incidents(folder: str | Path) -> pd.DataFrame:
    """The incidents table of a folder written by ``import sgo``."""
    path = Path(folder) / "incidents.parquet"
    if not path.is_file():
        raise UsageError(f"{folder}: no incidents.parquet", "import the reports into it first (roadworthy import sgo)")
    return pd.read_parquet(path)


def summarize(folder: str | Path, by: tuple[str, ...] = ("entity",), confidence: float = 0.95) -> dict:
    """Incidents, share of all incidents with an exact interval, and severe incidents, per group."""
    bad = [b for b in by if b not in GROUPS]
    if bad or not by:
        raise UsageError(f"`by` {','.join(by)}: unknown group(s) {bad}", f"group by any of {', '.join(GROUPS)}")
    inc = load_incidents(folder)
    total = len(inc)
    frame = inc.assign(**{b: inc[GROUPS[b]] for b in by})
    for b in by:
        if isinstance(frame[b].dtype, pd.CategoricalDtype):
            frame[b] = frame[b].astype(object)
        if GROUPS[b] in ("entities_raw",):
            frame = frame.explode(b)
    frame = frame.assign(_severe=frame["severe"].fillna(False).astype(bool))
    counts = frame.groupby(list(by), dropna=False).agg(
        incidents=("incident_id", "nunique"), severe=("_severe", "sum"), known=("severe", "count")
    )
    groups = []
    for keys, row in counts.reset_index().set_index(list(by)).iterrows():
        keys = keys if isinstance(keys, tuple) else (keys,)
        k, severe = int(row["incidents"]), int(row["severe"])
        lo, hi = binomial_interval(k, total, confidence)
        slo, shi = binomial_interval(severe, int(row["known"]), confidence)
        entry = {b: _plain(v) for b, v in zip(by, keys, strict=True)}
        entry |= {
            "incidents": k,
            "share": k / total if total else 0.0,
            "ci": [lo, hi],
            "severe": severe,
            "severity_known": int(row["known"]),
            "severe_share": severe / int(row["known"]) if int(row["known"]) else None,
            "severe_ci": [slo, shi] if int(row["known"]) else None,
        }
        groups.append(entry)
    if set(by) <= {"month", "year"}:  # a time series reads in time order
        groups.sort(key=lambda g: [str(g[b]) for b in by])
    else:
        groups.sort(key=lambda g: (-g["incidents"], [str(g[b]) for b in by]))
    return {"by": list(by), "confidence": confidence, "incidents": total, "groups": groups}


def _plain(v: object) -> object:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    if hasattr(v, "item"):
        return v.item()  # type: ignore[union-attr]
    return v
