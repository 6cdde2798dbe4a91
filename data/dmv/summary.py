"""``roadworthy dmv summary``: disengagement rates per group, with exact Poisson intervals.

Events come from ``events.parquet``; autonomous miles only from the mileage reports
(``vehicles.parquet``). Miles are known per vehicle, so they split by manufacturer and
report year only: grouped by initiator, location or cause as well, a row's rate is the
events of that kind per 1,000 miles of the whole fleet in its manufacturer/year group. A
group with events and no reported miles says so and gets no rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from roadworthy.data.errors import UsageError

GROUPS = ("manufacturer", "year", "initiator", "location", "cause")
_MILE_KEYS = ("manufacturer", "year")


def poisson_interval(k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from ``k`` events."""
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.chi2.ppf(a / 2, 2 * k) / 2)
    hi = float(stats.chi2.ppf(1 - a / 2, 2 * k + 2) / 2)
    return lo, hi


def load(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, vehicles) of an imported folder."""
    folder = Path(folder)
    files = [folder / "events.parquet", folder / "vehicles.parquet"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"{folder}: no {', '.join(missing)}", "import the reports first (roadworthy import dmv)")
    events = pd.read_parquet(files[0]).rename(columns={"report_year": "year"})
    vehicles = pd.read_parquet(files[1]).rename(columns={"report_year": "year"})
    if "cause" not in events:
        events["cause"] = "uncategorised"
    return events, vehicles


def summarize(folder: str | Path, by: tuple[str, ...] = ("manufacturer", "year"), confidence: float = 0.95) -> dict:
    """Events, miles, events per 1,000 miles with an exact interval, and miles per event, per group."""
    bad = [b for b in by if b not in GROUPS]
    if bad or not by:
        raise UsageError(f"`by` {','.join(by)}: unknown group(s) {bad}", f"group by any of {', '.join(GROUPS)}")
    events, vehicles = load(folder)
    counts = events.groupby(list(by), dropna=False).size().rename("events").reset_index()
    mile_keys = [k for k in by if k in _MILE_KEYS]
    if mile_keys:
        miles = vehicles.groupby(mile_keys, dropna=False)["annual_miles"].sum().rename("miles").reset_index()
        table = counts.merge(miles, on=mile_keys, how="outer")
    else:
        table = counts.assign(miles=float(vehicles["annual_miles"].sum()))
    table["events"] = table["events"].fillna(0).astype(int)
    groups = []
    for row in table.to_dict("records"):
        k, miles = int(row["events"]), row.get("miles")
        miles = None if miles is None or (isinstance(miles, float) and np.isnan(miles)) else float(miles)
        entry = {key: (None if pd.isna(row[key]) else (int(row[key]) if key == "year" else row[key])) for key in by}
        entry |= {"events": k, "miles": miles}
        if miles and miles > 0:
            lo, hi = poisson_interval(k, confidence)
            entry |= {
                "per_1000_miles": 1000 * k / miles,
                "ci": [1000 * lo / miles, 1000 * hi / miles],
                "miles_per_event": miles / k if k else None,
            }
        else:
            entry |= {"per_1000_miles": None, "ci": None, "miles_per_event": None}
            entry["note"] = "no autonomous miles reported"
        groups.append(entry)
    groups.sort(key=lambda g: -(g["miles"] or 0))
    return {"by": list(by), "confidence": confidence, "groups": groups}
